//! Seeded integer hashing used to order examples deterministically.

/// SplitMix64's finaliser: a bijective 64-bit mix with good avalanche.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded permutation of `0..n` evaluated at `i` (cycle-walking over a
/// 4-round Feistel network on the next power of four), so a pass over a
/// finite source visits every example exactly once without storing an order.
pub fn permute(i: u64, n: u64, seed: u64) -> u64 {
    debug_assert!(i < n);
    let bits = (64 - (n - 1).max(1).leading_zeros()).div_ceil(2) as u64;
    let half_mask = (1u64 << bits) - 1;
    let mut x = i;
    loop {
        let (mut left, mut right) = (x >> bits, x & half_mask);
        for round in 0..4u64 {
            let f = mix(seed ^ (round << 56) ^ right) & half_mask;
            (left, right) = (right, left ^ f);
        }
        x = (left << bits) | right;
        if x < n {
            return x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_is_a_permutation() {
        for n in [1u64, 2, 3, 7, 64, 100, 1000] {
            let mut seen: Vec<u64> = (0..n).map(|i| permute(i, n, 42)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }
}
