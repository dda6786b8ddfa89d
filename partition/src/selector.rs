//! Device selectors: the short name of the hardware a run is on, such as
//! `cpu-8`, `cuda-h100-8` or `tpu-v5p-256`, that mesh rules match against.

/// Vendor and marketing words dropped from device kinds.
const NOISE_WORDS: [&str; 8] = [
    "nvidia", "amd", "tpu", "geforce", "tesla", "radeon", "instinct", "quadro",
];

/// The selector for `num_devices` devices of `device_kind` on `platform`
/// (the runtime's platform name, device kind and device count):
/// `{platform}-{kind}-{count}`, or `{platform}-{count}` when the kind says
/// nothing more (always on CPU). The count is the number of devices the
/// runtime reports, e.g. TPU chips, not Cloud TPU's core-based slice names.
///
/// ```
/// use axle_partition::device_selector;
/// assert_eq!(device_selector("cpu", "cpu", 8), "cpu-8");
/// assert_eq!(device_selector("cuda", "NVIDIA H100 80GB HBM3", 8), "cuda-h100-8");
/// assert_eq!(device_selector("tpu", "TPU v5 lite", 256), "tpu-v5e-256");
/// ```
pub fn device_selector(platform: &str, device_kind: &str, num_devices: usize) -> String {
    let platform = platform.trim().to_ascii_lowercase();
    let kind = if platform == "cpu" {
        String::new()
    } else {
        normalize_device_kind(device_kind)
    };
    if kind.is_empty() {
        format!("{platform}-{num_devices}")
    } else {
        format!("{platform}-{kind}-{num_devices}")
    }
}

/// The short, lower-case name of a device kind as reported by PJRT:
/// `NVIDIA H100 80GB HBM3` -> `h100`, `NVIDIA A100-SXM4-80GB` -> `a100`,
/// `NVIDIA GeForce RTX 4090` -> `rtx4090`, `TPU v4` -> `v4`, `TPU v5 lite` ->
/// `v5e`, `TPU v5` (JAX's name for v5p) -> `v5p`, `TPU v6 lite` -> `v6e`.
///
/// Rule: lower-case, split on spaces, `-` and `_`, keep letters and digits,
/// drop vendor words; a TPU
/// generation followed by `lite` gets `e`, a bare `v5` is `v5p`; otherwise the
/// first word with both letters and digits; otherwise the words joined.
pub fn normalize_device_kind(device_kind: &str) -> String {
    let lower = device_kind.to_ascii_lowercase();
    let cleaned: Vec<String> = lower
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .map(|word| word.chars().filter(char::is_ascii_alphanumeric).collect())
        .collect();
    let words: Vec<&str> = cleaned
        .iter()
        .map(String::as_str)
        .filter(|word| !word.is_empty() && !NOISE_WORDS.contains(word))
        .collect();
    let has_letter = |w: &str| w.chars().any(|c| c.is_ascii_alphabetic());
    let has_digit = |w: &str| w.chars().any(|c| c.is_ascii_digit());
    match words.as_slice() {
        [] => String::new(),
        [generation, "lite", ..] => format!("{generation}e"),
        ["v5"] => "v5p".to_string(),
        _ => match words.iter().find(|w| has_letter(w) && has_digit(w)) {
            Some(word) => word.to_string(),
            None => words.concat(),
        },
    }
}
