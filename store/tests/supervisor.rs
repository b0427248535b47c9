//! The all-in-one's embedded ClickHouse: started, migrated, restarted after a crash on the same
//! port with its data intact, and stopped cleanly.

use orrery_store::ClickHouseArgs;
use orrery_store::embedded::{EmbeddedArgs, EmbeddedClickHouse};
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

unsafe fn libc_kill(pid: i32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    unsafe { kill(pid, 9) };
}
