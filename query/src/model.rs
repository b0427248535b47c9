//! The API's JSON shapes (see `query/openapi.yaml`): defined once in `orrery-api`, shared with
//! the web UI.

pub use orrery_api::*;
