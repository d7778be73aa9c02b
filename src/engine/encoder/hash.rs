//! The encoders' hash: the one function every code is made of, fixed forever.
//!
//! A stored pattern was encoded by some version of dendrite on some machine; a query encoded by
//! another must give the same bits, or nothing stored would be recognised again. So the hash is
//! written here from two published functions rather than taken from a crate whose output may
//! change: FNV-1a 64 (Fowler, Noll, Vo) turns names and strings into numbers, and SplitMix64's
//! finaliser (Steele, Lea and Flood 2014) mixes them. Golden vectors in the tests pin both; a
//! change to any line here re-encodes every record ever stored.

use crate::rng::{FNV1A_START, fnv1a};

/// SplitMix64's finaliser: a bijection of u64 whose every output bit depends on every input bit.
pub fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Two words into one: `mix(a ^ mix(b + golden))`. The inner mix keeps `(a, b)` and `(b, a)`
/// apart; the golden ratio's constant keeps `b = 0` from passing through unmixed.
pub fn combine(a: u64, b: u64) -> u64 {
    mix(a ^ mix(b.wrapping_add(0x9E37_79B9_7F4A_7C15)))
}

/// The FNV-1a 64 hash of bytes.
pub fn bytes(data: &[u8]) -> u64 {
    fnv1a(FNV1A_START, data)
}

/// A field's key: its name bound to the space's seed, so two fields (and two spaces) draw
/// unrelated bits for the same value.
pub fn field_key(seed: u64, name: &str) -> u64 {
    combine(seed, bytes(name.as_bytes()))
}

/// A hash onto `0..n` without modulo bias worth the name (Lemire's multiply-shift).
pub fn onto(hash: u64, n: u32) -> u32 {
    ((u128::from(hash) * u128::from(n)) >> 64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed_forever() {
        // Golden vectors: every stored record's code depends on these exact values.
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161D_100B_05E5);
        assert_eq!(combine(0, 0), 0x4821_8226_FF3C_D4BF);
        assert_eq!(combine(7, 42), 0xAEBD_B1A5_611C_EE63);
        assert_eq!(field_key(7, "temperature"), 0xE435_0AA8_4695_AC03);
        assert_eq!(onto(u64::MAX, 2048), 2047);
        assert_eq!(onto(0, 2048), 0);
        assert_eq!(onto(1 << 63, 2048), 1024);
    }

    #[test]
    fn combine_is_not_symmetric() {
        assert_ne!(combine(1, 2), combine(2, 1));
    }
}
