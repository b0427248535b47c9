//! Orrery web UI (see issue 5): the live service map and the trace views.
//!
//! The pure parts (API shapes, layout, encodings, waterfall model, synthetic data) build on any
//! target and are unit-tested natively; the browser parts (Leptos app, WebGL2 renderer) only
//! build for wasm32.

pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
mod auth;
#[cfg(target_arch = "wasm32")]
pub mod bench;
pub mod checks;
pub mod diff;
pub mod encoding;
pub mod grouping;
pub mod layout;
pub mod live;
pub mod map;
pub mod map_lists;
pub mod namespaces;
#[cfg(target_arch = "wasm32")]
mod net;
pub mod replay;
#[cfg(target_arch = "wasm32")]
pub mod route;
pub mod scatter;
pub mod signin;
pub mod span_table;
pub mod sse;
#[cfg(target_arch = "wasm32")]
mod stream;
pub mod synth;
#[cfg(test)]
mod test_support;
#[cfg(target_arch = "wasm32")]
mod trace_compare;
pub mod trace_diff;
pub mod trace_flame;
pub mod trace_graph;
pub mod trace_info;
#[cfg(target_arch = "wasm32")]
mod trace_load;
#[cfg(target_arch = "wasm32")]
mod trace_loaded;
pub mod trace_logfmt;
pub mod trace_prefix;
#[cfg(target_arch = "wasm32")]
mod trace_search;
#[cfg(target_arch = "wasm32")]
mod trace_view;
#[cfg(target_arch = "wasm32")]
mod trace_views;
pub mod waterfall;
