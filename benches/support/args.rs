//! Flag reading shared by the benches that take `--name value` pairs (no clap: a bench's flags
//! are a handful of numbers and strings, and unknown ones are ignored so cargo's own `--bench`
//! passes through).

/// `--name N`, or `default` when it is absent or not a number.
pub fn arg(name: &str, default: u64) -> u64 {
    arg_str(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `--name VALUE`, if given.
pub fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
