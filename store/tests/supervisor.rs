//! The all-in-one's embedded ClickHouse: started, migrated, restarted after a crash on the same
//! port with its data intact, and stopped cleanly.

use orrery_store::ClickHouseArgs;
use orrery_store::embedded::{Backoff, EmbeddedArgs, EmbeddedClickHouse, EngineState};
use orrery_store::schema::{self, SchemaParams};
use std::time::{Duration, Instant};

#[tokio::test]
async fn restarts_after_kill_keeps_data_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let args = EmbeddedArgs {
        data_dir: dir.path().to_path_buf(),
        embedded_port: 0,
        chdb_python: orrery_store::testing::chdb_python(),
    };
    let engine = EmbeddedClickHouse::start(&args).await.unwrap();
    let ch = ClickHouseArgs::for_url(engine.url(), "orrery");
    let params = SchemaParams::from_args(&ch).unwrap();
    let first = schema::migrate(&ch.server_client(engine.url()), &params)
        .await
        .unwrap();
    assert_eq!(first.applied.len() as u32, schema::latest_version());
    // Idempotent: a second run applies nothing.
    let second = schema::migrate(&ch.server_client(engine.url()), &params)
        .await
        .unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already.len() as u32, schema::latest_version());

    ch.client()
        .query("INSERT INTO otel_traces (TraceId, SpanId, ServiceName, Timestamp) VALUES ('t1', 's1', 'a', now64(9))")
        .execute()
        .await
        .unwrap();

    let pid = engine.pid().await.unwrap();
    unsafe { libc_kill(pid as i32) };
    // The supervisor brings it back on the same URL.
    let deadline = Instant::now() + Duration::from_secs(60);
    // Done when a new engine (a pid, not the old one) answers. While restarting, the
    // supervisor has no child at all, which is not "restarted" yet.
    let (count, new_pid) = loop {
        let answer = ch
            .client()
            .query("SELECT count() FROM otel_traces")
            .fetch_one::<u64>()
            .await;
        match (answer, engine.pid().await) {
            (Ok(n), Some(now)) if now != pid => break (n, now),
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "embedded ClickHouse did not come back"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(count, 1);
    engine.stop().await;
    // Stopped means gone: the process is reaped and the port refuses.
    assert!(
        !std::path::Path::new(&format!("/proc/{new_pid}/status")).exists()
            || std::fs::read_to_string(format!("/proc/{new_pid}/status"))
                .unwrap()
                .contains("State:\tZ")
    );
    assert!(
        ch.client()
            .query("SELECT 1")
            .fetch_one::<u8>()
            .await
            .is_err()
    );
}

/// Kill -9 the engine again and again: each restart waits twice as long as the one before
/// (a crash loop is not a 200 ms spin), the health handle and its metrics follow every state,
/// and after a healthy stretch the backoff starts over. Asserts the policy's delays and lower
/// bounds on the time to come back, not exact timings.
#[tokio::test]
async fn repeated_crashes_back_off_exponentially_and_health_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let args = EmbeddedArgs {
        data_dir: dir.path().to_path_buf(),
        embedded_port: 0,
        chdb_python: orrery_store::testing::chdb_python(),
    };
    let policy = Backoff {
        initial: Duration::from_millis(300),
        max: Duration::from_millis(1_000),
        healthy_after: Duration::from_secs(6),
    };
    let engine = EmbeddedClickHouse::start_with(&args, policy).await.unwrap();
    let health = engine.health();
    assert!(health.is_up());
    let mut states = health.subscribe();
    let ch = ClickHouseArgs::for_url(engine.url(), "default");

    // Kill as soon as the engine is back, four times: 300 ms, 600 ms, then capped at 1 s.
    let mut delays = Vec::new();
    for _ in 0..4 {
        let pid = engine.pid().await.expect("a running engine");
        let killed = Instant::now();
        unsafe { libc_kill(pid as i32) };
        let delay = loop {
            states.changed().await.unwrap();
            if let EngineState::Restarting { delay, .. } = *states.borrow_and_update() {
                break delay;
            }
        };
        assert!(!health.is_up());
        let why = health.not_ready_reason().unwrap();
        assert!(why.contains("restart attempt"), "{why}");
        loop {
            states.changed().await.unwrap();
            if *states.borrow_and_update() == EngineState::Up {
                break;
            }
        }
        assert!(
            killed.elapsed() >= delay,
            "restarted after {:?}, before its backoff {delay:?}",
            killed.elapsed()
        );
        assert_ne!(engine.pid().await, Some(pid));
        // Up means answering, with the same secret.
        let one: u8 = ch.client().query("SELECT 1").fetch_one().await.unwrap();
        assert_eq!(one, 1);
        delays.push(delay);
    }
    let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [300, 600, 1_000, 1_000]);
    assert_eq!(health.restarts(), 4);
    assert_eq!(health.not_ready_reason(), None);

    let mut registry = prometheus_client::registry::Registry::default();
    health.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("orrery_embedded_engine_up 1"), "{text}");
    assert!(
        text.contains("orrery_embedded_engine_restarts_total 4"),
        "{text}"
    );

    // Healthy for longer than `healthy_after`: the next crash starts the backoff over.
    tokio::time::sleep(policy.healthy_after + Duration::from_millis(500)).await;
    unsafe { libc_kill(engine.pid().await.unwrap() as i32) };
    let delay = loop {
        states.changed().await.unwrap();
        if let EngineState::Restarting { delay, .. } = *states.borrow_and_update() {
            break delay;
        }
    };
    assert_eq!(delay, policy.initial);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("orrery_embedded_engine_up 0"), "{text}");
    engine.stop().await;
    assert_eq!(health.state(), EngineState::Stopped);
}

/// Every start writes a new secret, mode 0600, and the engine refuses the old one.
#[tokio::test]
async fn each_start_writes_a_new_private_secret_and_the_old_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let args = EmbeddedArgs {
        data_dir: dir.path().to_path_buf(),
        embedded_port: 0,
        chdb_python: orrery_store::testing::chdb_python(),
    };
    let first = EmbeddedClickHouse::start(&args).await.unwrap();
    let file = first.secret_file().to_path_buf();
    assert_eq!(
        file,
        dir.path().canonicalize().unwrap().join("clickhouse.secret")
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let old = first.secret().to_string();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), old);
    assert!(old.len() >= 64);
    first.stop().await;

    let second = EmbeddedClickHouse::start(&args).await.unwrap();
    let new = second.secret().to_string();
    assert_ne!(new, old);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), new);
    // The password file, as `--clickhouse-password-file` reads it, opens the engine.
    let mut ch = ClickHouseArgs::for_url(second.endpoint(), "default");
    ch.clickhouse_password_file = Some(file.clone());
    ch.load_password_file().unwrap();
    let one: u8 = ch.client().query("SELECT 1").fetch_one().await.unwrap();
    assert_eq!(one, 1);
    // The previous start's secret does not.
    let mut stale = ClickHouseArgs::for_url(second.endpoint(), "default");
    stale.clickhouse_password = Some(old);
    assert!(
        stale
            .client()
            .query("SELECT 1")
            .fetch_one::<u8>()
            .await
            .is_err()
    );
    second.stop().await;
}

unsafe fn libc_kill(pid: i32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    unsafe { kill(pid, 9) };
}
