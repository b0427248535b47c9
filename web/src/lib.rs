//! Orrery web UI (see issue 5).
