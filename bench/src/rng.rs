//! A small, fast, seedable PRNG (wyrand) for the workloads: every allocator sees the same request
//! sequence for the same seed, and drawing a number costs a few cycles next to an allocation.

/// wyrand: a 64-bit state advanced by a constant, mixed by one 64×64→128 multiply.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`; any value works, including 0.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for one stream of one workload: `parts` name it (case, trial, thread, …), so that
    /// every allocator gets the same stream for the same parts.
    pub fn for_stream(parts: &[u64]) -> Rng {
        let mut h = 0x243f_6a88_85a3_08d3_u64;
        for &p in parts {
            h = Rng::new(h ^ p).next_u64();
        }
        Rng::new(h)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let (hi, lo) = mul_wide(self.0, self.0 ^ 0xe703_7ed1_a0b4_28db);
        hi ^ lo
    }

    /// Uniform in `lo..hi` (`hi` excluded; `lo < hi`), by multiply-high: the top 64 bits of
    /// `next_u64() × (hi - lo)` (the bias is below 2^-40 for the ranges used here).
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        debug_assert!(lo < hi);
        let span = (hi - lo) as u64;
        let x = self.next_u64();
        #[cfg(target_pointer_width = "64")]
        let top = mul_wide(x, span).0;
        // On 32-bit targets `hi - lo` fits in 32 bits, which needs only two 64-bit multiplies.
        #[cfg(not(target_pointer_width = "64"))]
        let top = mul_high_by_halves(x, span);
        lo + top as usize
    }

    #[inline]
    pub fn next_u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }
}

/// The full 128-bit product of `a` and `b`, as (high, low) halves: the machine's wide multiply on
/// 64-bit targets, [`mul_wide_by_halves`] elsewhere.
#[inline]
fn mul_wide(a: u64, b: u64) -> (u64, u64) {
    #[cfg(target_pointer_width = "64")]
    {
        let t = u128::from(a) * u128::from(b);
        ((t >> 64) as u64, t as u64)
    }
    #[cfg(not(target_pointer_width = "64"))]
    mul_wide_by_halves(a, b)
}

/// The full 128-bit product of `a` and `b` from four 32 × 32 → 64 multiplies.
///
/// wasm32 has no wide multiply: there `u128` calls the general 128 × 128 routine `__multi3`, which
/// made the harness's random numbers cost about as much as a small allocation. This gives the
/// same bits inline.
#[cfg(any(test, not(target_pointer_width = "64")))]
#[inline]
fn mul_wide_by_halves(a: u64, b: u64) -> (u64, u64) {
    const LOW: u64 = 0xffff_ffff;
    let (a_hi, a_lo) = (a >> 32, a & LOW);
    let (b_hi, b_lo) = (b >> 32, b & LOW);
    let low_low = a_lo * b_lo;
    let high_low = a_hi * b_lo;
    let low_high = a_lo * b_hi;
    let high_high = a_hi * b_hi;
    // The middle column: the carry out of the low column and two 32-bit halves; it fits in 64 bits.
    let middle = (low_low >> 32) + (high_low & LOW) + (low_high & LOW);
    let lo = (middle << 32) | (low_low & LOW);
    let hi = high_high + (high_low >> 32) + (low_high >> 32) + (middle >> 32);
    (hi, lo)
}

/// The top 64 bits of `x × span`, for `span < 2^32`, from two 64-bit multiplies:
/// `x·span = (x_hi·2^32 + x_lo)·span`, whose top 64 bits are those of `x_hi·span` plus the carry
/// `x_lo·span / 2^32`, a sum that fits in 64 bits because `span < 2^32`.
#[cfg(any(test, not(target_pointer_width = "64")))]
#[inline]
fn mul_high_by_halves(x: u64, span: u64) -> u64 {
    debug_assert!(span <= u64::from(u32::MAX));
    ((x >> 32) * span + (((x & 0xffff_ffff) * span) >> 32)) >> 32
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn range_stays_in_bounds_and_covers_it() {
        let mut rng = Rng::new(1);
        let mut seen = [false; 7];
        for _ in 0..10_000 {
            let x = rng.range(3, 10);
            assert!((3..10).contains(&x));
            seen[x - 3] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn the_multiplies_by_halves_match_the_wide_product() {
        let mut rng = Rng::new(3);
        let edges = [0, 1, 0xffff_ffff, 1 << 32, u64::MAX, u64::MAX - 1];
        let pairs = edges
            .iter()
            .flat_map(|&a| edges.iter().map(move |&b| (a, b)))
            .chain((0..10_000).map(|_| (rng.next_u64(), rng.next_u64())));
        for (a, b) in pairs.collect::<Vec<_>>() {
            let t = u128::from(a) * u128::from(b);
            assert_eq!(
                super::mul_wide_by_halves(a, b),
                ((t >> 64) as u64, t as u64)
            );
        }
        for span in [1, 2, 7, 90_000, u64::from(u32::MAX)] {
            for _ in 0..1_000 {
                let x = rng.next_u64();
                let wide = (u128::from(x) * u128::from(span)) >> 64;
                assert_eq!(u128::from(super::mul_high_by_halves(x, span)), wide);
            }
        }
    }

    #[test]
    fn streams_differ_and_repeat() {
        let a = Rng::for_stream(&[1, 2]).next_u64();
        let b = Rng::for_stream(&[1, 3]).next_u64();
        assert_ne!(a, b);
        assert_eq!(a, Rng::for_stream(&[1, 2]).next_u64());
    }
}
