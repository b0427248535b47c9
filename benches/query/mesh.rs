//! The query bench's synthetic mesh: services in layers, traces through them, one big trace.

use super::*;

pub(crate) struct Mesh {
    pub(crate) services: usize,
    /// Fixed callees per service (0: any service of the next layer).
    pub(crate) callees: usize,
}

impl Mesh {
    pub(crate) fn name(&self, i: usize) -> String {
        format!("svc-{i:03}")
    }
    /// Layered: the first 10% are front doors, each layer calls into the next.
    pub(crate) fn callee(&self, from: usize, rng: &mut SmallRng) -> Option<usize> {
        let n = self.services;
        let layer = from * 4 / n;
        if layer >= 3 {
            return None;
        }
        let lo = (layer + 1) * n / 4;
        let hi = ((layer + 2) * n / 4).min(n);
        if self.callees == 0 {
            return Some(rng.random_range(lo..hi));
        }
        // Callee j of `from`: a fixed pseudo-random service of the next layer.
        let j = rng.random_range(0..self.callees) as u64;
        let h = ((from as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ j.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_mul(0x1656_67B1_9E37_79F9);
        Some(lo + (h >> 33) as usize % (hi - lo))
    }
}

pub(crate) fn hex(rng: &mut SmallRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// One trace: a root server span, then client/server pairs down the layers, a database call
/// at the leaves.
pub(crate) fn trace(mesh: &Mesh, rng: &mut SmallRng, ts: i64, out: &mut Vec<SpanRow>) {
    let tid = hex(rng, 16);
    let region = ["eu-west-1", "us-east-1", "ap-south-1"][rng.random_range(0..3)];
    let customer = format!("{}", rng.random_range(0..10_000));
    let mk =
        |service: String, kind: &str, id: String, parent: String, ts: i64, dur: u64, err: bool| {
            SpanRow {
                timestamp: ts,
                trace_id: tid.clone(),
                span_id: id,
                parent_span_id: parent,
                span_name: format!("{kind} op"),
                span_kind: kind.into(),
                resource_attributes: vec![
                    ("service.name".into(), service.clone()),
                    ("cloud.region".into(), region.into()),
                ],
                service_name: service,
                span_attributes: vec![("customer.id".into(), customer.clone())],
                duration: dur,
                status_code: if err { "Error".into() } else { "Unset".into() },
                ..Default::default()
            }
        };
    let root_svc = rng.random_range(0..mesh.services / 10);
    let root_id = hex(rng, 8);
    out.push(mk(
        mesh.name(root_svc),
        "Server",
        root_id.clone(),
        String::new(),
        ts,
        50 * MS as u64,
        false,
    ));
    let mut frontier = vec![(root_svc, root_id)];
    let mut t = ts;
    while let Some((svc, parent)) = frontier.pop() {
        let fan = if svc == root_svc { 2 } else { 1 };
        for _ in 0..fan {
            t += MS;
            let dur = rng.random_range(1..40) as u64 * MS as u64;
            let err = rng.random_range(0..100) == 0;
            let cid = hex(rng, 8);
            match mesh.callee(svc, rng) {
                Some(callee) => {
                    out.push(mk(
                        mesh.name(svc),
                        "Client",
                        cid.clone(),
                        parent.clone(),
                        t,
                        dur + MS as u64,
                        false,
                    ));
                    let sid = hex(rng, 8);
                    out.push(mk(
                        mesh.name(callee),
                        "Server",
                        sid.clone(),
                        cid,
                        t + MS / 2,
                        dur,
                        err,
                    ));
                    frontier.push((callee, sid));
                }
                None => {
                    let mut db = mk(mesh.name(svc), "Client", cid, parent.clone(), t, dur, err);
                    db.span_attributes
                        .push(("db.system.name".into(), "postgresql".into()));
                    out.push(db);
                }
            }
        }
    }
}

/// One trace of `n` spans over 8 services (the web big-trace test's shape: a wide, deep tree).
pub(crate) fn big_trace(n: usize, t0: i64) -> Vec<SpanRow> {
    let tid = "00000000000000000000000000b16b16".to_string();
    (0..n)
        .map(|i| SpanRow {
            timestamp: t0 + i as i64 * 1_000,
            trace_id: tid.clone(),
            span_id: format!("{:016x}", i + 1),
            parent_span_id: if i == 0 {
                String::new()
            } else {
                format!("{:016x}", 1 + i * 7919 % i)
            },
            span_name: format!("op-{}", i % 41),
            span_kind: "Server".into(),
            service_name: format!("svc-{}", i / 2_500),
            resource_attributes: vec![("service.name".into(), format!("svc-{}", i / 2_500))],
            scope_name: "big-trace".into(),
            duration: 500_000 + (i as u64 % 97) * 10_000,
            status_code: if i % 101 == 0 { "Error" } else { "Ok" }.into(),
            ..Default::default()
        })
        .collect()
}
