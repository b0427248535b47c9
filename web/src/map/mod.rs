//! The live service map: scene state, label placement, edge routing, shaders and renderer.

pub mod labels;
#[cfg(target_arch = "wasm32")]
pub mod render;
pub mod route;
pub mod scene;
#[cfg(target_arch = "wasm32")]
pub mod shaders;
