//! The query API's JSON shapes come from `orrery-api` (one definition, shared with the server);
//! this module adds what only the UI needs.

pub use orrery_api::*;

/// `GET /orrery/api/traces` answer.
pub type TraceList = TraceSearchResult;
