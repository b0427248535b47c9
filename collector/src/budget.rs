//! The bound on request bytes in memory across all connections (`--ingest-max-inflight-bytes`):
//! bytes read from clients, their gzip inflation and their conversion are reserved here while
//! a request holds them; a request that does not fit is pushed back (HTTP 503 + Retry-After,
//! gRPC RESOURCE_EXHAUSTED + RetryInfo) instead of growing the heap.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are counted in KiB (a semaphore's permits are `u32`).
const UNIT: usize = 1024;

#[derive(Clone, Debug)]
pub struct Budget {
    sem: Arc<Semaphore>,
    max: usize,
}

/// Bytes held by one request; released when dropped.
#[derive(Debug, Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

/// The budget is exhausted.
#[derive(Debug)]
pub struct Exhausted {
    pub max: usize,
}

impl Exhausted {
    pub fn message(&self) -> String {
        format!(
            "the collector holds its limit of {} bytes of requests in memory (--ingest-max-inflight-bytes); retry later",
            self.max
        )
    }

    pub const RETRY_AFTER: Duration = Duration::from_secs(1);
}

impl Held {
    /// Takes over what `other` holds.
    pub fn merge(&mut self, other: Held) {
        match (&mut self.0, other.0) {
            (_, None) => {}
            (Some(p), Some(o)) => p.merge(o),
            (None, o) => self.0 = o,
        }
    }
}

impl Budget {
    pub fn new(max_bytes: usize) -> Self {
        let permits = (max_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            sem: Arc::new(Semaphore::new(permits)),
            max: max_bytes,
        }
    }

    /// Reserves `bytes` more for `held`, without waiting.
    pub fn reserve(&self, held: &mut Held, bytes: usize) -> Result<(), Exhausted> {
        let units = u32::try_from(bytes.div_ceil(UNIT)).map_err(|_| Exhausted { max: self.max })?;
        if units == 0 {
            return Ok(());
        }
        let permit = self
            .sem
            .clone()
            .try_acquire_many_owned(units)
            .map_err(|_| Exhausted { max: self.max })?;
        match &mut held.0 {
            Some(p) => p.merge(permit),
            None => held.0 = Some(permit),
        }
        Ok(())
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        let free = self.sem.available_permits();
        ((self.max / UNIT).saturating_sub(free) * UNIT) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_released_on_drop() {
        let b = Budget::new(10 * 1024);
        let mut a = Held::default();
        b.reserve(&mut a, 6 * 1024).unwrap();
        b.reserve(&mut a, 1).unwrap(); // rounds up to one KiB
        assert_eq!(b.in_use(), 7 * 1024);
        let mut c = Held::default();
        assert!(b.reserve(&mut c, 4 * 1024).is_err());
        b.reserve(&mut c, 3 * 1024).unwrap();
        drop(a);
        assert_eq!(b.in_use(), 3 * 1024);
        b.reserve(&mut c, 7 * 1024).unwrap();
        assert!(b.reserve(&mut c, 1).is_err());
    }
}
