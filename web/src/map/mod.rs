//! The live service map: scene state, label placement, edge routing, shaders and renderer.

pub mod camera;
#[cfg(target_arch = "wasm32")]
mod canvas2d;
#[cfg(target_arch = "wasm32")]
mod geometry;
#[cfg(target_arch = "wasm32")]
mod gl;
#[cfg(target_arch = "wasm32")]
mod js;
pub mod labels;
#[cfg(target_arch = "wasm32")]
mod offscreen;
pub mod pace;
#[cfg(target_arch = "wasm32")]
pub mod perf;
pub mod rebuild;
#[cfg(target_arch = "wasm32")]
pub mod render;
pub mod route;
pub mod scene;
#[cfg(target_arch = "wasm32")]
pub mod shaders;
pub mod timeline;
