//! Chaos controls, switchable at runtime: latency monkey (slow a service or peer down), chaos
//! monkey (fail a share of its calls), chaos kong (take a whole region down), silence (a service
//! keeps answering but stops reporting spans), and restore. A target `service@version` hits only
//! that version's instances (the canary, see `fleet::CANARIES`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What is currently broken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChaosState {
    /// Added latency per service or peer, ms.
    pub latency_ms: BTreeMap<String, u64>,
    /// Share (0–1) of calls a service or peer fails.
    pub error_share: BTreeMap<String, f64>,
    /// Regions that are down: every service and peer there fails every call.
    pub down_regions: BTreeSet<String>,
    /// Services that answer but export no spans (their telemetry is lost).
    #[serde(default)]
    pub silenced: BTreeSet<String>,
}

/// What a call into a service or peer should suffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Healthy,
    /// Region down: fail at once.
    Unavailable,
    /// Chaos monkey picked this call.
    Fail,
}

/// Shared chaos settings; every service consults it on every call.
#[derive(Debug)]
pub struct Chaos {
    state: RwLock<ChaosState>,
    /// Names that may be targeted, with their region.
    targets: BTreeMap<String, String>,
    /// The targets that are instrumented services (may be silenced).
    services: BTreeSet<String>,
}

impl Chaos {
    pub fn new(targets: impl IntoIterator<Item = (String, String)>) -> Self {
        let targets: BTreeMap<String, String> = targets.into_iter().collect();
        Self {
            state: RwLock::default(),
            services: targets.keys().cloned().collect(),
            targets,
        }
    }

    /// Marks which targets are instrumented services (the others are peers).
    pub fn with_services(mut self, services: impl IntoIterator<Item = String>) -> Self {
        self.services = services.into_iter().collect();
        self
    }

    pub fn state(&self) -> ChaosState {
        self.state.read().unwrap().clone()
    }

    /// Applies the latency for `target` (sleeps), then says whether the call should fail.
    pub async fn apply(&self, target: &str, region: &str) -> Verdict {
        self.apply_as(&[target], region).await
    }

    /// [`Chaos::apply`] for a call that every one of `targets` names (a service and its
    /// `service@version`): latencies add up, error shares combine as independent failures.
    pub async fn apply_as(&self, targets: &[&str], region: &str) -> Verdict {
        let (latency, share, down) = {
            let s = self.state.read().unwrap();
            let latency: u64 = targets.iter().filter_map(|t| s.latency_ms.get(*t)).sum();
            let healthy: f64 = targets
                .iter()
                .filter_map(|t| s.error_share.get(*t))
                .map(|p| 1.0 - p)
                .product();
            (latency, 1.0 - healthy, s.down_regions.contains(region))
        };
        if down {
            return Verdict::Unavailable;
        }
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if share > 0.0 && rand::rng().random_bool(share.min(1.0)) {
            return Verdict::Fail;
        }
        Verdict::Healthy
    }

    pub fn set_latency(&self, target: &str, ms: u64) -> Result<(), String> {
        self.check_target(target)?;
        let mut s = self.state.write().unwrap();
        if ms == 0 {
            s.latency_ms.remove(target);
        } else {
            s.latency_ms.insert(target.to_string(), ms);
        }
        Ok(())
    }

    pub fn set_error_share(&self, target: &str, share: f64) -> Result<(), String> {
        self.check_target(target)?;
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("error share must be between 0 and 1, got {share}"));
        }
        let mut s = self.state.write().unwrap();
        if share == 0.0 {
            s.error_share.remove(target);
        } else {
            s.error_share.insert(target.to_string(), share);
        }
        Ok(())
    }

    /// Whether `service` currently exports nothing.
    pub fn silenced(&self, service: &str) -> bool {
        self.state.read().unwrap().silenced.contains(service)
    }

    /// Silence: `service` keeps answering but its spans are not exported (`on` false undoes it).
    pub fn silence(&self, service: &str, on: bool) -> Result<(), String> {
        self.check_target(service)?;
        if !self.services.contains(service) {
            return Err(format!(
                "{service:?} is not a demo service (peers report nothing anyway)"
            ));
        }
        let mut s = self.state.write().unwrap();
        if on {
            s.silenced.insert(service.to_string());
        } else {
            s.silenced.remove(service);
        }
        Ok(())
    }

    pub fn kong(&self, region: &str) -> Result<(), String> {
        if !crate::topology::REGIONS.contains(&region) {
            return Err(format!(
                "unknown region {region:?}; regions: {}",
                crate::topology::REGIONS.join(", ")
            ));
        }
        self.state
            .write()
            .unwrap()
            .down_regions
            .insert(region.to_string());
        Ok(())
    }

    pub fn restore(&self) {
        *self.state.write().unwrap() = ChaosState::default();
    }

    fn check_target(&self, target: &str) -> Result<(), String> {
        if self.targets.contains_key(target) {
            return Ok(());
        }
        let names: Vec<_> = self.targets.keys().map(String::as_str).collect();
        Err(format!(
            "unknown service or peer {target:?}; known: {}",
            names.join(", ")
        ))
    }
}

/// The control API: `GET /chaos`, `POST /chaos/latency/{target}/{ms}`,
/// `POST /chaos/error/{target}/{share}`, `POST /chaos/kong/{region}`,
/// `POST /chaos/silence/{service}`, `POST /chaos/restore`.
pub fn router(chaos: Arc<Chaos>, fleet: serde_json::Value) -> Router {
    Router::new()
        .route(
            "/chaos",
            get(|State(c): State<Arc<Chaos>>| async move { Json(c.state()) }),
        )
        .route(
            "/chaos/latency/{target}/{ms}",
            post(
                |State(c): State<Arc<Chaos>>, Path((t, ms)): Path<(String, u64)>| async move {
                    reply(&c, c.set_latency(&t, ms))
                },
            ),
        )
        .route(
            "/chaos/error/{target}/{share}",
            post(
                |State(c): State<Arc<Chaos>>, Path((t, share)): Path<(String, f64)>| async move {
                    reply(&c, c.set_error_share(&t, share))
                },
            ),
        )
        .route(
            "/chaos/kong/{region}",
            post(
                |State(c): State<Arc<Chaos>>, Path(r): Path<String>| async move {
                    reply(&c, c.kong(&r))
                },
            ),
        )
        .route(
            "/chaos/silence/{service}",
            post(
                |State(c): State<Arc<Chaos>>, Path(t): Path<String>| async move {
                    reply(&c, c.silence(&t, true))
                },
            ),
        )
        .route(
            "/chaos/restore",
            post(|State(c): State<Arc<Chaos>>| async move {
                c.restore();
                reply(&c, Ok(()))
            }),
        )
        .route("/fleet", get(move || async move { Json(fleet) }))
        .with_state(chaos)
}

fn reply(chaos: &Chaos, result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Json(chaos.state()).into_response(),
        Err(msg) => (StatusCode::BAD_REQUEST, msg).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos() -> Chaos {
        Chaos::new([("cart".to_string(), "us-east-1".to_string())])
    }

    #[tokio::test]
    async fn controls_change_verdicts_and_restore_clears_them() {
        let c = chaos();
        assert_eq!(c.apply("cart", "us-east-1").await, Verdict::Healthy);
        c.set_error_share("cart", 1.0).unwrap();
        assert_eq!(c.apply("cart", "us-east-1").await, Verdict::Fail);
        c.kong("us-east-1").unwrap();
        assert_eq!(c.apply("cart", "us-east-1").await, Verdict::Unavailable);
        c.restore();
        c.set_latency("cart", 30).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(c.apply("cart", "us-east-1").await, Verdict::Healthy);
        assert!(t.elapsed() >= Duration::from_millis(30));
        c.restore();
        assert_eq!(c.state(), ChaosState::default());
    }

    #[tokio::test]
    async fn a_versioned_target_hits_only_calls_that_name_it_and_silence_is_per_service() {
        let c = Chaos::new([
            ("payments".to_string(), "us-east-1".to_string()),
            ("payments@1.5.0".to_string(), "us-east-1".to_string()),
            ("stripe".to_string(), "external".to_string()),
        ])
        .with_services(["payments".to_string()]);
        c.set_error_share("payments@1.5.0", 1.0).unwrap();
        assert_eq!(
            c.apply_as(&["payments", "payments@1.4.2"], "us-east-1")
                .await,
            Verdict::Healthy
        );
        assert_eq!(
            c.apply_as(&["payments", "payments@1.5.0"], "us-east-1")
                .await,
            Verdict::Fail
        );
        assert!(!c.silenced("payments"));
        c.silence("payments", true).unwrap();
        assert!(c.silenced("payments"));
        assert!(
            c.silence("stripe", true)
                .unwrap_err()
                .contains("not a demo service")
        );
        c.restore();
        assert!(!c.silenced("payments"));
    }

    #[test]
    fn bad_targets_and_shares_are_refused_with_a_reason() {
        let c = chaos();
        assert!(c.set_latency("nope", 5).unwrap_err().contains("cart"));
        assert!(
            c.set_error_share("cart", 1.5)
                .unwrap_err()
                .contains("between 0 and 1")
        );
        assert!(c.kong("mars-1").unwrap_err().contains("us-east-1"));
        assert_eq!(c.state(), ChaosState::default());
    }
}
