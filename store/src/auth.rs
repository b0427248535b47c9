//! Token checks shared by every listener that takes a bearer token (the collector's receivers
//! and `/metrics`, the query API), so that there is one comparison to get right.

/// Whether `given` equals `expected`, in time that depends only on the length of `expected`:
/// neither where the first differing byte is nor the content of `given` changes the work done,
/// so a client cannot find the token byte by byte from response times. (The length of the
/// expected token is not secret: it is the operator's choice, e.g. 32 random bytes.)
pub fn token_matches(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    // Any length difference is a mismatch, folded in without branching on the content.
    let mut diff = (given.len() ^ expected.len()) as u64;
    for (i, e) in expected.iter().enumerate() {
        // Reading `given` cyclically keeps the loop the same for every `given`; an empty
        // `given` is compared against zeros (and already differs by length).
        let g = if given.is_empty() {
            0
        } else {
            given[i % given.len()]
        };
        diff |= u64::from(g ^ e);
    }
    // `black_box` keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// The token of an `Authorization: Bearer <token>` header value, if it is one.
pub fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_tokens_match() {
        assert!(token_matches("s3cret-token", "s3cret-token"));
        assert!(token_matches("", ""));
    }

    #[test]
    fn any_difference_is_a_mismatch() {
        let expected = "s3cret-token";
        for given in [
            "",
            "s",
            "s3cret-toke",
            "s3cret-tokenn",
            "s3cret-tokeN",
            "S3cret-token",
            "s3cret-token\0",
            // A prefix repeated: equal to `expected` under cyclic indexing in its first bytes.
            "s3cret-token s3cret-token",
            "s3cret-tokens3cret-token",
        ] {
            assert!(!token_matches(given, expected), "{given:?} matched");
        }
        assert!(!token_matches("x", ""));
    }

    #[test]
    fn non_ascii_is_compared_bytewise() {
        assert!(token_matches("tökén", "tökén"));
        assert!(!token_matches("tökén", "tokén"));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), None);
        assert_eq!(bearer("Basic abc"), None);
    }
}
