//! What the benches share: their positional arguments and how a figure is judged.

/// The `n`th positional argument (flags such as `--bench` left out), or `default`.
pub fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "within bound"
    } else {
        "OVER BOUND"
    }
}
