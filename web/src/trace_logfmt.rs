//! The search form's attribute filters, in logfmt as Jaeger UI takes them. Its own module so
//! that it is tested natively (the search page itself is browser-only).

/// Attribute filters in logfmt as Jaeger UI takes them: `key=value` pairs split by spaces,
/// a value in double quotes may hold spaces (`\"` and `\\` escape inside), a bare `key` means
/// `key=true`. An unterminated quote or an empty key is an error the form shows.
pub fn parse_logfmt(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            return Err("an attribute filter has no key before its '='".into());
        }
        if chars.next_if_eq(&'=').is_none() {
            out.push((key, "true".into()));
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("{key}: the value's quote is not closed")),
                    },
                    Some(c) => value.push(c),
                    None => return Err(format!("{key}: the value's quote is not closed")),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!("{key}: put a space after the quoted value"));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::parse_logfmt;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn logfmt_takes_quoted_values_with_spaces_as_jaeger_does() {
        assert_eq!(
            parse_logfmt(r#"http.route="/a b" error=true"#).unwrap(),
            pairs(&[("http.route", "/a b"), ("error", "true")])
        );
        assert_eq!(
            parse_logfmt("  http.status_code=500\terror  ").unwrap(),
            pairs(&[("http.status_code", "500"), ("error", "true")])
        );
        assert_eq!(
            parse_logfmt(r#"msg="say \"hi\" \\ bye" k= x="a=b""#).unwrap(),
            pairs(&[("msg", r#"say "hi" \ bye"#), ("k", ""), ("x", "a=b")])
        );
        assert_eq!(parse_logfmt("").unwrap(), vec![]);
        assert!(parse_logfmt(r#"a="open"#).is_err());
        assert!(parse_logfmt(r#"a="x\"#).is_err());
        assert!(parse_logfmt("=v").is_err());
        assert!(parse_logfmt(r#"a="x"y"#).is_err());
    }
}
