//! The span row exactly as stored in `otel_traces`: the column names and types of the
//! OpenTelemetry Collector ClickHouse exporter, so either side can read the other's data.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// The spans table (the exporter's name).
pub const SPANS_TABLE: &str = "otel_traces";
/// Trace id → first/last timestamp, filled by a materialized view; makes trace-by-id cheap.
pub const TRACE_ID_TS_TABLE: &str = "otel_traces_trace_id_ts";

/// `SpanKind` values written by Orrery (the exporter's current spelling). Readers also accept
/// the older `SPAN_KIND_*` spelling; see [`kind_matches`].
pub mod kind {
    pub const UNSPECIFIED: &str = "Unspecified";
    pub const INTERNAL: &str = "Internal";
    pub const SERVER: &str = "Server";
    pub const CLIENT: &str = "Client";
    pub const PRODUCER: &str = "Producer";
    pub const CONSUMER: &str = "Consumer";

    /// The stored string for an OTLP `SpanKind` enum value.
    pub fn from_otlp(value: i32) -> &'static str {
        match value {
            1 => INTERNAL,
            2 => SERVER,
            3 => CLIENT,
            4 => PRODUCER,
            5 => CONSUMER,
            _ => UNSPECIFIED,
        }
    }

    /// The OTLP enum value for a stored string, in either spelling.
    pub fn to_otlp(stored: &str) -> i32 {
        match stored {
            "Internal" | "SPAN_KIND_INTERNAL" => 1,
            "Server" | "SPAN_KIND_SERVER" => 2,
            "Client" | "SPAN_KIND_CLIENT" => 3,
            "Producer" | "SPAN_KIND_PRODUCER" => 4,
            "Consumer" | "SPAN_KIND_CONSUMER" => 5,
            _ => 0,
        }
    }
}

/// `StatusCode` values written by Orrery. Readers also accept `STATUS_CODE_*`.
pub mod status {
    pub const UNSET: &str = "Unset";
    pub const OK: &str = "Ok";
    pub const ERROR: &str = "Error";
    /// Every stored spelling of the error status, for `StatusCode IN (...)` filters.
    pub const ERROR_SPELLINGS: [&str; 2] = ["Error", "STATUS_CODE_ERROR"];

    /// Whether a stored status spelling is the error status (the one rule for rows read whole
    /// or in pieces).
    pub fn is_error(stored: &str) -> bool {
        ERROR_SPELLINGS.contains(&stored)
    }

    pub fn from_otlp(value: i32) -> &'static str {
        match value {
            1 => OK,
            2 => ERROR,
            _ => UNSET,
        }
    }

    pub fn to_otlp(stored: &str) -> i32 {
        match stored {
            "Ok" | "STATUS_CODE_OK" => 1,
            "Error" | "STATUS_CODE_ERROR" => 2,
            _ => 0,
        }
    }
}

/// One row of `otel_traces`. Timestamps are nanoseconds since the Unix epoch
/// (`DateTime64(9)`), ids are lowercase hex, attributes are string maps (non-string OTLP values
/// are stored in their JSON form, as the exporter does).
#[derive(Row, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanRow {
    #[serde(rename = "Timestamp")]
    pub timestamp: i64,
    #[serde(rename = "TraceId")]
    pub trace_id: String,
    #[serde(rename = "SpanId")]
    pub span_id: String,
    #[serde(rename = "ParentSpanId")]
    pub parent_span_id: String,
    #[serde(rename = "TraceState")]
    pub trace_state: String,
    #[serde(rename = "SpanName")]
    pub span_name: String,
    #[serde(rename = "SpanKind")]
    pub span_kind: String,
    #[serde(rename = "ServiceName")]
    pub service_name: String,
    #[serde(rename = "ResourceAttributes")]
    pub resource_attributes: Vec<(String, String)>,
    #[serde(rename = "ScopeName")]
    pub scope_name: String,
    #[serde(rename = "ScopeVersion")]
    pub scope_version: String,
    #[serde(rename = "SpanAttributes")]
    pub span_attributes: Vec<(String, String)>,
    /// Nanoseconds.
    #[serde(rename = "Duration")]
    pub duration: u64,
    #[serde(rename = "StatusCode")]
    pub status_code: String,
    #[serde(rename = "StatusMessage")]
    pub status_message: String,
    #[serde(rename = "Events.Timestamp")]
    pub events_timestamp: Vec<i64>,
    #[serde(rename = "Events.Name")]
    pub events_name: Vec<String>,
    #[serde(rename = "Events.Attributes")]
    pub events_attributes: Vec<Vec<(String, String)>>,
    #[serde(rename = "Links.TraceId")]
    pub links_trace_id: Vec<String>,
    #[serde(rename = "Links.SpanId")]
    pub links_span_id: Vec<String>,
    #[serde(rename = "Links.TraceState")]
    pub links_trace_state: Vec<String>,
    #[serde(rename = "Links.Attributes")]
    pub links_attributes: Vec<Vec<(String, String)>>,
}

impl SpanRow {
    /// True when the span's status is an error, in either stored spelling.
    pub fn is_error(&self) -> bool {
        status::is_error(&self.status_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_status_round_trip_through_otlp_values() {
        for v in 0..=5 {
            assert_eq!(kind::to_otlp(kind::from_otlp(v)), v);
        }
        for v in 0..=2 {
            assert_eq!(status::to_otlp(status::from_otlp(v)), v);
        }
        assert_eq!(kind::to_otlp("SPAN_KIND_CLIENT"), 3);
        assert_eq!(status::to_otlp("STATUS_CODE_ERROR"), 2);
        assert_eq!(kind::from_otlp(99), kind::UNSPECIFIED);
    }
}
