//! Dead letters: rows ClickHouse refuses permanently, set aside under `<spool>/dead/` instead of
//! blocking an insert slot (see docs/collector.md, "Dead letters").
//!
//! Each is two files: `<name>.seg`, a spool segment (format 2, one record of RowBinary rows,
//! so it replays like any batch, with the deduplication token `orrery-<name>`), and
//! `<name>.json`, why it is there. `<name>` is the batch's own name plus `-dead`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::rowbinary;
use crate::spool::{Segment, health::private_file, write_segment_file};

/// What sits in `dead/`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub segments: u64,
    pub spans: u64,
    pub bytes: u64,
}

/// One dead letter as listed.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// The `.json` sidecar (`Value::Null` if missing or unreadable).
    pub meta: Value,
}

impl DeadLetter {
    pub fn spans(&self) -> u64 {
        self.meta["spans"].as_u64().unwrap_or(0)
    }

    pub fn error(&self) -> &str {
        self.meta["error"].as_str().unwrap_or("(no error recorded)")
    }

    fn meta_path(&self) -> PathBuf {
        self.path.with_extension("json")
    }
}

/// Why rows were set aside.
pub struct Why<'a> {
    /// The batch they came from (its file name).
    pub batch: &'a str,
    pub batch_spans: usize,
    pub code: Option<u32>,
    /// The first error and a few distinct others.
    pub errors: Vec<String>,
    /// True when the rows failed one by one (bisected); false when the whole batch was set
    /// aside (an error that does not depend on the rows, e.g. a schema mismatch).
    pub isolated: bool,
}

/// Writes `rows` (RowBinary rows, `spans` of them) as the dead letter `name` in `dir`. The
/// segment is complete and synced before its sidecar is, and both before the caller removes
/// the batch: a crash in between leaves the rows in two places, never in none.
pub fn write(dir: &Path, name: &str, rows: &[u8], spans: usize, why: &Why) -> io::Result<PathBuf> {
    let seg = dir.join(format!("{name}.seg"));
    let mut record = Vec::with_capacity(rows.len() + 4);
    record.extend_from_slice(&(spans as u32).to_le_bytes());
    record.extend_from_slice(rows);
    write_segment_file(&seg, &[&record])?;
    let meta = json!({
        "batch": why.batch,
        "batch_spans": why.batch_spans,
        "spans": spans,
        "code": why.code,
        "error": why.errors.first().cloned().unwrap_or_default(),
        "errors": why.errors,
        "isolated": why.isolated,
        "at_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    let tmp = seg.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f = private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(&meta)?.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, seg.with_extension("json"))?;
    crate::spool::health::sync_dir(dir)?;
    Ok(seg)
}

/// Every dead letter in `dir`, oldest batch first.
pub fn list(dir: &Path) -> Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {dir:?}")),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let meta = fs::read(path.with_extension("json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        out.push(DeadLetter {
            name,
            path,
            bytes,
            meta,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Totals of `dir` (for the gauges and `/readyz`).
pub fn summary(dir: &Path) -> Summary {
    let mut s = Summary::default();
    for d in list(dir).unwrap_or_default() {
        s.segments += 1;
        s.spans += d.spans();
        s.bytes += d.bytes;
    }
    s
}

/// Finds a dead letter by name (with or without `.seg`).
pub fn find(dir: &Path, name: &str) -> Result<DeadLetter> {
    let name = name.trim_end_matches(".seg");
    list(dir)?
        .into_iter()
        .find(|d| d.name == name)
        .with_context(|| format!("no dead letter {name:?} in {dir:?} (see `orrery spool list`)"))
}

/// What `orrery spool inspect` shows.
#[derive(Debug)]
pub struct Inspection {
    pub spans: usize,
    pub services: BTreeMap<String, usize>,
    /// Earliest and latest span start, ns since the Unix epoch.
    pub time_range: Option<(i64, i64)>,
}

/// Reads a segment's rows (any spool segment: dead, parked or queued).
pub fn inspect(path: &Path) -> Result<Inspection> {
    let (_, rows) = load_rows(path)?;
    let mut services = BTreeMap::new();
    let mut range: Option<(i64, i64)> = None;
    for r in &rows {
        *services.entry(r.service.clone()).or_insert(0) += 1;
        range = Some(match range {
            None => (r.timestamp, r.timestamp),
            Some((lo, hi)) => (lo.min(r.timestamp), hi.max(r.timestamp)),
        });
    }
    Ok(Inspection {
        spans: rows.len(),
        services,
        time_range: range,
    })
}

/// A segment's rows, concatenated, and where each sits. Format 1 (protobuf) records are
/// converted like the sink converts them.
pub fn load_rows(path: &Path) -> Result<(Bytes, Vec<rowbinary::RowInfo>)> {
    let seg = Segment::from_path(path.to_path_buf())?;
    let mut data = Vec::new();
    for record in seg.read_records()? {
        if seg.format == 1 {
            use prost::Message;
            let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(record)
                .with_context(|| format!("decoding a record of {path:?}"))?;
            rowbinary::encode(&req, usize::MAX, &mut data);
        } else {
            let (_, rows) = rowbinary::split_record(&record)
                .with_context(|| format!("a record of {path:?} is too short"))?;
            data.extend_from_slice(&rows);
        }
    }
    let rows = rowbinary::rows(&data)
        .with_context(|| format!("{path:?} does not hold rows of this version's table"))?;
    Ok((Bytes::from(data), rows))
}

/// Deletes a dead letter (both files).
pub fn remove(d: &DeadLetter) -> io::Result<()> {
    fs::remove_file(&d.path)?;
    match fs::remove_file(d.meta_path()) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if let Some(dir) = d.path.parent() {
        crate::spool::health::sync_dir(dir)?;
    }
    Ok(())
}
