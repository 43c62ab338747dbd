//! A small seeded generator (SplitMix64) for data order: shuffles and splits must be the same
//! on every machine and in every version, so we do not depend on a crate's stream.

/// Torch's random generator is global to the process. The trainer seeds it and then draws
/// (initialisation, dropout) expecting nobody else to draw in between, or a resumed run would
/// not repeat the uninterrupted one; code that builds modules (random initialisation) on
/// another thread holds this lock meanwhile, as the trainer does from seeding to drawing.
pub fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A panic while holding it leaves nothing half-done that the lock protects.
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// A generator for one purpose derived from a seed (e.g. `derive(seed, epoch)`), so that
    /// streams do not overlap and a resumed run can rebuild any of them from scratch.
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mut r = Rng::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0), by rejection so that it is unbiased.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_shuffle_and_different_seed_different_shuffle() {
        let base: Vec<u32> = (0..50).collect();
        let (mut a, mut b, mut c) = (base.clone(), base.clone(), base.clone());
        Rng::new(7).shuffle(&mut a);
        Rng::new(7).shuffle(&mut b);
        Rng::new(8).shuffle(&mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, base, "a shuffle is a permutation");
    }

    #[test]
    fn derived_streams_differ_per_stream() {
        assert_ne!(Rng::derive(42, 0).next_u64(), Rng::derive(42, 1).next_u64());
        assert_eq!(Rng::derive(42, 3).next_u64(), Rng::derive(42, 3).next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
