//! On-call CLI.
