//! Jaeger's parameter formats: RFC 3339 times (v3), Go durations (`time.ParseDuration`, v3
//! `query.durationMin`), and trace ids in hex (1–32 digits) or base64 (16 bytes, standard or
//! URL alphabet, padded or not) as Jaeger's `TraceIDFromString` accepts them.

/// Nanoseconds since the Unix epoch of an RFC 3339 time (`2026-01-02T03:04:05.123456789Z`,
/// any offset `±hh:mm`, fractional seconds up to nanoseconds).
pub fn rfc3339_nanos(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not an RFC 3339 time like 2026-01-02T15:04:05.999Z");
    let b = s.trim().as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> Result<i64, String> {
        let part = std::str::from_utf8(&b[from..to]).map_err(|_| bad())?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(bad());
    }
    if second > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &b[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return Err(bad());
        }
        for (n, d) in digits.iter().enumerate() {
            nanos += i64::from(d - b'0') * 10i64.pow(8 - n as u32);
        }
    }
    let offset_s = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            let off = h * 3600 + m * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(bad)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Nanoseconds of a Go duration (`300ms`, `1.5h`, `2h45m`, `10us`, `10µs`); a bare number
/// other than 0 is refused, as Go refuses it.
pub fn go_duration_nanos(s: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("{s:?} is not a duration like 100ms, 1.5s, 2h45m ({why})");
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end]
            .parse()
            .map_err(|_| bad("expected a number"))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(bad("missing unit")),
            _ => return Err(bad("unknown unit")),
        };
        rest = &rest[u_end..];
        total += n * unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad("too long"));
    }
    Ok(total as u64)
}

/// A trace id as stored (32 lowercase hex digits) from hex (1–32 digits, zero-padded) or
/// base64 of 16 bytes.
pub fn trace_id(s: &str) -> Result<String, String> {
    let t = s.trim();
    if !t.is_empty() && t.len() <= 32 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Ok(format!("{:0>32}", t.to_ascii_lowercase()));
    }
    if t.len() <= 24
        && let Some(bytes) = base64_decode(t)
        && bytes.len() <= 16
        && !bytes.is_empty()
    {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        return Ok(format!("{hex:0>32}"));
    }
    Err(format!(
        "{s:?} is not a trace id (1 to 32 hex digits, or base64 of 16 bytes)"
    ))
}

/// Standard or URL-safe base64, padding optional.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if s.len() % 4 == 1 {
        return None;
    }
    Some(out)
}

/// The id as Jaeger v1 prints it: 16 hex digits when the high 64 bits are zero.
pub fn v1_trace_id(stored: &str) -> &str {
    match stored.strip_prefix("0000000000000000") {
        Some(low) if stored.len() == 32 => low,
        _ => stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_with_fractions_and_offsets() {
        assert_eq!(rfc3339_nanos("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            rfc3339_nanos("2026-06-03T12:00:00.123456789Z").unwrap(),
            1_780_488_000_123_456_789
        );
        assert_eq!(
            rfc3339_nanos("2026-06-03T14:00:00.5+02:00").unwrap(),
            1_780_488_000_500_000_000
        );
        // What the Jaeger UI sends: Date.toISOString().
        assert_eq!(
            rfc3339_nanos("2000-02-29T23:59:59.999Z").unwrap(),
            951_868_799_999_000_000
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00.1234567891Z",
            "１９７０-01-01T00:00:00Z",
            "99999-01-01T00:00:00Z",
        ] {
            assert!(rfc3339_nanos(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_nanos("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(go_duration_nanos("2h45m").unwrap(), 9_900_000_000_000);
        assert_eq!(go_duration_nanos("10us").unwrap(), 10_000);
        assert_eq!(go_duration_nanos("10µs").unwrap(), 10_000);
        assert_eq!(go_duration_nanos("0").unwrap(), 0);
        for bad in ["", "5", "1x", "ms", "-1s", "1e400h"] {
            assert!(go_duration_nanos(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn trace_ids_in_hex_and_base64() {
        let hex = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(trace_id(hex).unwrap(), hex);
        assert_eq!(trace_id("ABC").unwrap(), format!("{}abc", "0".repeat(29)));
        // base64 of the same 16 bytes, padded, unpadded, URL alphabet.
        assert_eq!(trace_id("CvdlGRbNQ92ESOshHIAxnA==").unwrap(), hex);
        assert_eq!(trace_id("CvdlGRbNQ92ESOshHIAxnA").unwrap(), hex);
        assert_eq!(trace_id("_____________________w").unwrap(), "f".repeat(32));
        for bad in ["", "xyz!", &"a".repeat(33), "A="] {
            assert!(trace_id(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            v1_trace_id(&format!("{}{}", "0".repeat(16), "1".repeat(16))),
            "1".repeat(16)
        );
        assert_eq!(v1_trace_id(hex), hex);
    }
}
