//! Semantic-convention details shared by the server layer (`server.rs`) and the gRPC helpers
//! (`grpc.rs`), so neither imports the other.

/// gRPC codes that mark a *server* span as an error (semantic conventions): UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
pub fn is_server_error(code: i64) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// `host[:port]` (or `[v6]:port`) → `server.address` and `server.port`.
pub(crate) fn split_host_port(authority: &str) -> (String, Option<i64>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            match port.parse() {
                Ok(p) => (host.trim_matches(['[', ']']).to_string(), Some(p)),
                Err(_) => (authority.to_string(), None),
            }
        }
        _ => (authority.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_fault_codes_mark_server_spans_as_errors() {
        assert!(is_server_error(13) && is_server_error(14) && is_server_error(2));
        assert!(!is_server_error(0) && !is_server_error(5) && !is_server_error(3));
    }

    #[test]
    fn host_and_port_are_split_also_for_ipv6() {
        assert_eq!(split_host_port("db:5432"), ("db".into(), Some(5432)));
        assert_eq!(split_host_port("[::1]:80"), ("::1".into(), Some(80)));
        assert_eq!(split_host_port("example.com"), ("example.com".into(), None));
        assert_eq!(split_host_port("host:http"), ("host:http".into(), None));
    }
}
