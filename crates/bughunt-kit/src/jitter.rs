//! A seeded random number generator for jitter, handed to the program by its check.
//!
//! Retries need randomness (jitter) to keep clients that failed together from retrying
//! together. Real randomness would make a check pass on one run and fail on the next, so a
//! program that jitters takes its randomness from an [`Rng`] its caller gives it: in
//! production one seeded from the OS, in a check one seeded from the history. The same seed
//! draws the same numbers on every run, every platform and every Rust version (splitmix64),
//! and two seeds draw unrelated numbers, so two consumers given two seeds jitter apart.
//!
//! ```
//! use bughunt_kit::jitter::Rng;
//!
//! let mut rng = Rng::seeded(7);
//! let delay_ms = rng.up_to(1_000); // 0..=1000, uniform
//! assert!(delay_ms <= 1_000);
//! assert_eq!(Rng::seeded(7).up_to(1_000), delay_ms);
//! ```

/// A small, fast, seeded generator (splitmix64). Not for cryptography.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose numbers depend on `seed` alone.
    pub fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..=max`, each equally likely (rejection sampling: no modulo bias).
    pub fn up_to(&mut self, max: u64) -> u64 {
        let Some(span) = max.checked_add(1) else {
            return self.next_u64();
        };
        // The largest multiple of `span` that fits: draws at or above it would favour the
        // small results, so they are drawn again (less than half the time, always).
        let zone = u64::MAX - (u64::MAX % span + 1) % span;
        loop {
            let draw = self.next_u64();
            if draw <= zone {
                return draw % span;
            }
        }
    }

    /// A number in `low..=high`, each equally likely; `high` below `low` is read as `low`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.up_to(high.saturating_sub(low))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed draws the same numbers: a check that hands out seeds is repeatable.
    #[test]
    fn same_seed_same_numbers() {
        let first: Vec<u64> = (0..8)
            .scan(Rng::seeded(42), |rng, _| Some(rng.up_to(99)))
            .collect();
        let again: Vec<u64> = (0..8)
            .scan(Rng::seeded(42), |rng, _| Some(rng.up_to(99)))
            .collect();
        assert_eq!(first, again);
        let other: Vec<u64> = (0..8)
            .scan(Rng::seeded(43), |rng, _| Some(rng.up_to(99)))
            .collect();
        assert_ne!(
            first, other,
            "two seeds should not draw the same eight numbers"
        );
    }

    /// The numbers are stable across versions: a check's histories depend on them.
    #[test]
    fn splitmix64_reference_values() {
        let mut rng = Rng::seeded(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    /// `up_to` stays in range, reaches both ends, and is roughly uniform.
    #[test]
    fn up_to_is_in_range_and_uniform() {
        let mut rng = Rng::seeded(1);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            let draw = rng.up_to(9);
            counts[draw as usize] += 1;
        }
        for (value, count) in counts.iter().enumerate() {
            assert!(
                (800..1_200).contains(count),
                "{value} drawn {count} times in 10000 draws of 0..=9"
            );
        }
        assert_eq!(rng.up_to(0), 0);
        let _ = rng.up_to(u64::MAX);
    }

    /// `between` covers its bounds and treats an empty range as its lower bound.
    #[test]
    fn between_bounds() {
        let mut rng = Rng::seeded(5);
        let draws: Vec<u64> = (0..1_000).map(|_| rng.between(100, 103)).collect();
        assert!(draws.iter().all(|draw| (100..=103).contains(draw)));
        assert!(draws.contains(&100) && draws.contains(&103));
        assert_eq!(rng.between(7, 3), 7);
    }
}
