//! Helpers for tests and benches that run the `orrery` binary as a user would: a clean
//! environment, free loopback ports, and what `/proc` says about a process.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::process::Command;

/// The first port of the kernel's ephemeral range (32768 when `/proc` does not say).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A loopback port nobody listens on right now, for a process the test starts to bind later.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`, 32768+ on Linux), not by
/// binding port 0: a port-0 pick *is* ephemeral, so between its release and the child's bind
/// any outgoing connection or port-0 listener on the machine (the engine, the demo fleet, a
/// parallel test) can be given it, and the child then fails to start. Below the range only
/// another explicit pick can collide, and this process never hands out the same port twice.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let low = ephemeral_low();
    let (from, to) = (10_000u16, low.max(10_001));
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let port = rand::random_range(from..to);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    // No luck below the range (a crowded machine): the kernel's pick.
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A command for the binary at `bin` (a test passes `env!("CARGO_BIN_EXE_orrery")`) that
/// inherits none of a developer's `ORRERY_*`/`OTEL_*` settings and finds the chDB Python.
pub fn orrery_command(bin: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("ORRERY_") || k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ORRERY_CHDB_PYTHON", super::chdb_python());
    cmd
}

/// Resident set size in KiB: current and peak (VmRSS, VmHWM); zeros once the process is gone.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Direct children of a process (e.g. the chDB server under `orrery all-in-one`).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_process() {
        let me = std::process::id();
        let (rss, peak) = rss_kib(me);
        assert!(rss > 0 && peak >= rss, "rss {rss} peak {peak}");
        // Burn a little CPU so the counter is certainly above zero.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(me) > 0.0);
        assert_eq!(rss_kib(u32::MAX), (0, 0));
    }

    #[test]
    fn command_drops_developer_settings() {
        let cmd = orrery_command("/bin/true");
        let envs: std::collections::HashMap<_, _> = cmd.get_envs().collect();
        assert!(envs["ORRERY_CHDB_PYTHON".as_ref() as &OsStr].is_some());
        for (k, _) in std::env::vars() {
            if (k.starts_with("ORRERY_") || k.starts_with("OTEL_")) && k != "ORRERY_CHDB_PYTHON" {
                assert_eq!(envs[k.as_ref() as &OsStr], None, "{k} inherited");
            }
        }
        assert_ne!(free_port(), 0);
    }

    /// Picks are bindable, distinct, and outside the kernel's ephemeral range.
    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let low = ephemeral_low();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for p in &ports {
            assert!(*p < low, "{p} is in the ephemeral range (from {low})");
            std::net::TcpListener::bind(("127.0.0.1", *p)).expect("still free");
        }
    }
}
