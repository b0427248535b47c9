//! Orrery demo fleet (see issue 6).
