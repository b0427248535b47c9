use super::*;

fn cfg(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        batch_max_spans: 3,
        batch_max_bytes: 1 << 20,
        batch_timeout: Duration::from_secs(3600),
        busy_backlog: 2,
        fsync: Fsync::Never,
        fsync_interval: Duration::from_secs(1),
        fsync_errors: Default::default(),
    }
}

#[tokio::test]
async fn segments_seal_at_the_span_bound_and_torn_tails_are_cut_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, mut sealed) = Spool::open(cfg(dir.path())).unwrap();
    for i in 0..4u8 {
        spool.append(Bytes::from(vec![i; 10]), 1).await.unwrap();
    }
    let seg = sealed.recv().await.unwrap();
    assert_eq!(seg.read_records().unwrap().len(), 3);
    assert_eq!(seg.format, FORMAT);
    // Two segments: a 12-byte header each, 18 bytes a record.
    assert_eq!(spool.bytes(), 2 * 12 + 4 * 18);
    spool.delivered(&seg).unwrap();
    assert_eq!(spool.bytes(), 12 + 18);
    // Simulate a crash: what is on disk now, copied elsewhere (this process still holds
    // the spool), plus a torn record after the fourth one in the still-open segment.
    let crashed = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() && p.file_name().unwrap() != "LOCK" {
            fs::copy(&p, crashed.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let open = fs::read_dir(crashed.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "open"))
        .unwrap();
    let mut f = OpenOptions::new().append(true).open(&open).unwrap();
    f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
    drop(f);
    spool.close();
    let (spool, mut sealed) = Spool::open(cfg(crashed.path())).unwrap();
    let seg = sealed.recv().await.unwrap();
    let records = seg.read_records().unwrap();
    assert_eq!(records, vec![Bytes::from(vec![3u8; 10])]);
    assert_eq!(spool.bytes(), 12 + 18);
}

fn record(payload: &[u8]) -> Vec<u8> {
    let mut r = (payload.len() as u32).to_le_bytes().to_vec();
    r.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    r.extend_from_slice(payload);
    r
}

#[tokio::test]
async fn an_older_versions_spool_is_replayed_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Format 1: no header, records from byte 0; its torn tail is cut like any other.
    let mut v1 = record(b"old request");
    v1.extend_from_slice(&[9, 0, 0]);
    fs::write(
        dir.path()
            .join("00000000000000000007-00000000000000aa.open"),
        &v1,
    )
    .unwrap();
    let (spool, mut sealed) = Spool::open(cfg(dir.path())).unwrap();
    let seg = sealed.recv().await.unwrap();
    assert_eq!(seg.format, 1);
    assert_eq!(seg.token, "orrery-00000000000000000007-00000000000000aa");
    assert_eq!(
        seg.read_records().unwrap(),
        vec![Bytes::from_static(b"old request")]
    );
    // New segments continue the sequence, in the current format.
    spool.append(Bytes::from_static(b"new"), 3).await.unwrap();
    spool.close();
    let seg = sealed.recv().await.unwrap();
    assert!(
        seg.path.to_str().unwrap().contains("00000000000000000008-"),
        "{:?}",
        seg.path
    );
    assert_eq!(seg.format, FORMAT);
    assert_eq!(
        seg.read_records().unwrap(),
        vec![Bytes::from_static(b"new")]
    );

    let newer = tempfile::tempdir().unwrap();
    let mut v9 = MAGIC.to_vec();
    v9.extend_from_slice(&9u32.to_le_bytes());
    v9.extend_from_slice(&record(b"future"));
    fs::write(
        newer
            .path()
            .join("00000000000000000001-00000000000000bb.seg"),
        &v9,
    )
    .unwrap();
    let err = Spool::open(cfg(newer.path())).err().expect("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("has format 9") && msg.contains("reads formats 1 and 2"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_busy_sink_lets_the_open_segment_grow_past_its_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.batch_max_spans = 100;
    c.batch_timeout = Duration::from_millis(30);
    c.busy_backlog = 1;
    let (spool, mut sealed) = Spool::open(c).unwrap();
    spool.append(Bytes::from_static(b"a"), 1).await.unwrap();
    let first = sealed.recv().await.unwrap();
    // The first segment is still being "inserted": the next one outlives its timeout…
    spool.append(Bytes::from_static(b"b"), 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(sealed.try_recv().is_err(), "sealed while the sink was busy");
    spool.append(Bytes::from_static(b"c"), 1).await.unwrap();
    // …and is sealed once the sink has room.
    spool.delivered(&first).unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), sealed.recv())
        .await
        .expect("sealed after delivery")
        .unwrap();
    assert_eq!(second.read_records().unwrap().len(), 2);
    let mut reader = second.reader().await.unwrap();
    assert_eq!(reader.next().await.unwrap(), Some(Bytes::from_static(b"b")));
    assert_eq!(reader.next().await.unwrap(), Some(Bytes::from_static(b"c")));
    assert_eq!(reader.next().await.unwrap(), None);
}

#[tokio::test]
async fn interval_fsync_acknowledges_and_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.fsync = Fsync::Interval;
    c.fsync_interval = Duration::from_millis(10);
    let (spool, mut sealed) = Spool::open(c).unwrap();
    for i in 0..4u8 {
        spool.append(Bytes::from(vec![i; 10]), 1).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    spool.close();
    let first = sealed.recv().await.unwrap();
    let second = sealed.recv().await.unwrap();
    assert_eq!(first.read_records().unwrap().len(), 3);
    assert_eq!(second.read_records().unwrap().len(), 1);
}

#[tokio::test]
async fn a_spool_directory_has_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _sealed) = Spool::open(cfg(dir.path())).unwrap();
    let err = Spool::open(cfg(dir.path()))
        .err()
        .expect("second open refused");
    assert!(
        err.to_string().contains("in use by another collector"),
        "{err}"
    );
    spool.close();
}

#[tokio::test]
async fn a_full_spool_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.max_bytes = 25;
    let (spool, _sealed) = Spool::open(c).unwrap();
    spool.append(Bytes::from(vec![1; 10]), 1).await.unwrap();
    assert!(matches!(
        spool.append(Bytes::from(vec![1; 10]), 1).await,
        Err(AppendError::Full { .. })
    ));
}
