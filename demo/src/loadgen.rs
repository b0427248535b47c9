//! User traffic: weighted journeys through the edge gateway at a steady rate. The load
//! generator itself is not instrumented, so traces start at the gateway as with real users.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::topology::JOURNEYS;

/// Sends `rate` requests per second to `gateway` until `stop`.
pub async fn drive(gateway: String, rate: f64, stop: CancellationToken) {
    if rate <= 0.0 {
        return;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    // Bounded in-flight requests: a slowed-down fleet must not pile up unbounded work.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let total: u32 = JOURNEYS.iter().map(|j| j.2).sum();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let mut pick = rand::rng().random_range(0..total);
        let (method, path, _) = *JOURNEYS
            .iter()
            .find(|j| {
                if pick < j.2 {
                    true
                } else {
                    pick -= j.2;
                    false
                }
            })
            .expect("weighted pick");
        let request = client.request(method.parse().expect("method"), format!("{gateway}{path}"));
        tokio::spawn(async move {
            let _ = request.send().await;
            drop(permit);
        });
    }
}
