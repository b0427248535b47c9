//! Values, windows and the typed parameters of every endpoint, extreme ones included.

use super::*;

#[test]
fn durations_in_every_spelling() {
    let ms = Duration::from_millis(1);
    assert_eq!(
        duration("d", "1.5s", ms).unwrap(),
        Duration::from_millis(1500)
    );
    assert_eq!(
        duration("d", "250ms", ms).unwrap(),
        Duration::from_millis(250)
    );
    assert_eq!(duration("d", "5m", ms).unwrap(), Duration::from_secs(300));
    assert_eq!(
        duration("d", "100", ms).unwrap(),
        Duration::from_millis(100)
    );
    assert_eq!(
        duration("d", "1h 30m", ms).unwrap(),
        Duration::from_secs(5400)
    );
    assert!(duration("d", "soon", ms).is_err());
    assert!(duration("d", "-3s", ms).is_err());
}

#[test]
fn extreme_durations_are_refused_not_panics() {
    let ms = Duration::from_millis(1);
    for v in [
        "1e300",
        "1e300s",
        "1e300d",
        "NaN",
        "nans",
        "inf",
        "-inf",
        "infs",
        "-0.5",
        "-1ms",
        "99999999999999999999d",
        "100000000000000000000000000000",
        "5000000000h",
    ] {
        let e = duration("since", v, ms).unwrap_err();
        assert!(e.contains("since"), "{v}: {e}");
    }
    assert_eq!(duration("d", "3650d", ms).unwrap(), MAX_DURATION);
}

#[test]
fn extreme_windows_are_refused_not_panics() {
    let now = 1_000 * MINUTE_NS;
    for (k, v) in [
        ("start", i64::MAX.to_string()),
        ("start", i64::MIN.to_string()),
        ("start", "-1".to_string()),
        ("end", i64::MAX.to_string()),
        ("end", "9223372036854775807000".to_string()),
        ("since", "1e300".to_string()),
        ("since", "3650d".to_string()),
    ] {
        let q: Query = [(k.to_string(), v.clone())].into_iter().collect();
        assert!(window(&q, now, Duration::from_secs(60)).is_err(), "{k}={v}");
    }
    assert!(span(i64::MIN, i64::MAX, now).is_err());
    assert!(span(i64::MAX - 1, i64::MAX, now).is_err());
}

fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
    q.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn typed_parameters_name_the_bad_one_and_keep_the_old_rules() {
    // The message of a bad value names its parameter, as the hand-written parsing did.
    for (q, msg) in [
        ("since=1e300", r#"since: "1e300" is longer than 3650 days"#),
        ("since=soon", r#"since: "soon" is not a duration"#),
        ("start=x", r#"start: "x" is not an integer"#),
        (
            "end=9223372036854775807",
            r#"end: "9223372036854775807" is not a Unix time in milliseconds"#,
        ),
        (
            "level=bogus",
            r#"level: "bogus" is not one of global, region, focused"#,
        ),
    ] {
        let e = from_query::<GraphParams>(q)
            .and_then(|_| from_query::<WindowParams>(q))
            .unwrap_err();
        assert!(e.starts_with(msg), "{q}: {e}");
    }
    let e = from_query::<SearchParams>("limit=1&min_duration=-3s").unwrap_err();
    assert!(e.starts_with("min_duration: "), "{e}");
    assert!(
        from_query::<SearchParams>("errors=maybe")
            .unwrap_err()
            .starts_with(r#"errors: "maybe" is not a boolean"#)
    );
    // The first bad parameter of the query string is the one reported.
    let e = from_query::<SearchParams>("limit=x&max_duration=y").unwrap_err();
    assert!(e.starts_with("limit: "), "{e}");

    // A repeated parameter counts once, the last; `attr` keeps every value in order.
    let w: WindowParams = from_query("since=1h&since=5m").unwrap();
    assert_eq!(w.since, Some(Secs(Duration::from_secs(300))));
    let s: SearchParams = from_query("attr=a%3D1&limit=5&attr=b%3D2").unwrap();
    assert_eq!(s.attr, ["a=1", "b=2"]);
    let search = s.search().unwrap();
    assert_eq!(
        search.attributes,
        [("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    assert_eq!(search.limit, 5);
    // An empty optional value is as if absent; a flag without a value is true.
    let g: GraphParams = from_query("level=&service=&region=&group=").unwrap();
    assert!(g.level.is_none() && g.service.is_none() && g.region.is_none());
    let s: SearchParams = from_query("errors&limit=&order=").unwrap();
    assert!(s.errors.0);
    assert_eq!(s.search().unwrap().limit, 20);
    // Unknown parameters are ignored; node ids are typed.
    let g: GraphParams = from_query("level=focused&service=database:pg&token=x").unwrap();
    assert_eq!(
        g.service.as_ref().unwrap().kind(),
        orrery_api::NodeKind::Database
    );
    assert_eq!(g.level, Some(Level::Focused));
    // What depends on several parameters is checked by the struct.
    let now = 1_000 * MINUTE_NS;
    let w = WindowParams::default();
    let focused: GraphParams = from_query("level=focused").unwrap();
    assert!(
        focused
            .request(&w, now)
            .unwrap_err()
            .message
            .contains("service=")
    );
    let r = g.request(&w, now).unwrap();
    assert_eq!(r.focus.as_deref(), Some("database:pg"));
    let b: BaseParams = from_query("base_start=60000").unwrap();
    assert!(
        b.span(r.window, now)
            .unwrap_err()
            .message
            .contains("base_end")
    );
    let s: SearchParams = from_query("min_duration=2s&max_duration=1s").unwrap();
    assert!(s.search().is_err());
    let many: String = (0..21).map(|i| format!("attr=k{i}%3Dv&")).collect();
    let e = from_query::<SearchParams>(&many)
        .unwrap()
        .search()
        .unwrap_err();
    assert!(e.message.contains("at most 20"), "{}", e.message);
    for q in ["interval=0.5", "interval=2h"] {
        let p: StreamParams = from_query(q).unwrap();
        assert!(p.interval(Duration::from_secs(5)).is_err(), "{q}");
    }
    assert_eq!(
        from_pairs::<WindowParams>(pairs(&[("end", "120000")]))
            .unwrap()
            .span(now, Duration::from_secs(60))
            .unwrap()
            .lo,
        MINUTE_NS
    );
}

#[test]
fn windows_are_minute_aligned_and_checked() {
    let now = 1_000 * MINUTE_NS + 30_000_000_000;
    let mut q = Query::new();
    q.insert("since".into(), "5m".into());
    let w = window(&q, now, Duration::from_secs(60)).unwrap();
    assert_eq!(w.lo, 995 * MINUTE_NS);
    assert_eq!(w.hi, 1001 * MINUTE_NS);
    assert!(w.live());
    q.insert("start".into(), "10".into());
    q.insert("end".into(), "5".into());
    assert!(window(&q, now, Duration::from_secs(60)).is_err());
    q.insert("start".into(), "x".into());
    assert!(
        window(&q, now, Duration::from_secs(60))
            .unwrap_err()
            .contains("start")
    );
}
