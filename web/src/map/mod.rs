//! The live service map: scene state, shaders and renderer.

#[cfg(target_arch = "wasm32")]
pub mod render;
pub mod scene;
#[cfg(target_arch = "wasm32")]
pub mod shaders;
