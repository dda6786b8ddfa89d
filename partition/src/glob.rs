//! A tiny glob for mesh-rule patterns: `*` matches any run of characters
//! (including none), `{a,b,c}` matches any one of its comma-separated
//! alternatives (as in shell brace expansion; not nested); every other
//! character matches itself.

/// Whether `text` matches `pattern` as a whole (`*` = any run of
/// characters, `{a,b}` = `a` or `b`). An unclosed `{` matches itself.
///
/// ```
/// use axle_partition::glob_match;
/// assert!(glob_match("cuda-h100-*", "cuda-h100-8"));
/// assert!(glob_match("*-1", "tpu-v5e-1"));
/// assert!(!glob_match("*-1", "cpu-16"));
/// assert!(glob_match("tpu-v5p-{1,2,4}", "tpu-v5p-4"));
/// assert!(!glob_match("tpu-v5p-{1,2,4}", "tpu-v5p-8"));
/// ```
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let Some((open, close)) = pattern
        .find('{')
        .and_then(|open| Some((open, open + pattern[open..].find('}')?)))
    else {
        return star_match(pattern, text);
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    pattern[open + 1..close]
        .split(',')
        .any(|alternative| glob_match(&format!("{head}{alternative}{tail}"), text))
}

/// [`glob_match`] for a pattern without braces.
fn star_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it is currently matched up to:
    // on a mismatch, let that star swallow one more character and retry.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}
