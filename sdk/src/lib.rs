//! Orrery SDK (see issue 6).
