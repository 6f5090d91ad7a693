//! Exhaustive and model-checked tests of the bitmap at field widths 8, 32 and 64.

extern crate std;
use std::vec::Vec;

use super::{Bitmap, Field, Word};
use crate::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize};
use core::sync::atomic::Ordering::Relaxed;

fn fields<F: Field>(count: usize) -> Vec<F> {
    (0..count).map(|_| F::new(F::Word::ZERO)).collect()
}

/// The bits of a bitmap as booleans, for comparing with a model.
fn bits_of<F: Field>(map: &Bitmap<'_, F>) -> Vec<bool> {
    (0..map.bit_count()).map(|i| map.is_set(i)).collect()
}

/// Whether the exhaustive test takes run length `n` for fields of `bits` bits. Natively it takes
/// every length. Under Miri, which is thousands of times slower, it takes the lengths that matter at
/// the boundaries: up to 9, and one below, at and above each multiple of the field width.
fn length_taken(n: usize, bits: usize) -> bool {
    !cfg!(miri) || n <= 9 || matches!(n % bits, 0 | 1) || n % bits == bits - 1
}

/// Every start and every length up to three fields' worth, in a bitmap of four fields.
///
/// Under Miri only the starts within the first field are taken, with the lengths of `length_taken`,
/// which still covers every alignment of a run against the field boundaries.
fn exhaustive_claims<F: Field>() {
    let bits = F::Word::BITS as usize;
    let storage = fields::<F>(4);
    let map = Bitmap::new(&storage);
    let total = map.bit_count();
    let starts = if cfg!(miri) { bits } else { total };
    for start in 0..starts {
        for n in (1..=(3 * bits).min(total - start)).filter(|&n| length_taken(n, bits)) {
            assert!(map.try_claim(start, n), "claim {start}+{n}");
            assert_eq!(map.count_set(), n, "exactly the run is set: {start}+{n}");
            assert!(map.is_claimed(start, n));
            assert!(map.is_any_claimed(start, n));
            assert!(
                !map.try_claim(start, n),
                "second claim of {start}+{n} must fail"
            );
            assert!(
                !map.try_claim(start + n - 1, 1),
                "last bit of {start}+{n} is taken"
            );
            if start > 0 {
                assert!(
                    !map.is_claimed(start - 1, n),
                    "run shifted down is not all set"
                );
            }
            if n > 1 {
                map.unclaim(start + n - 1, 1);
                assert!(!map.try_unclaim(start, n), "partly set run {start}+{n}");
                assert_eq!(
                    map.count_set(),
                    n - 1,
                    "try_unclaim of a partly set run changed it"
                );
                map.claim(start + n - 1, 1);
            }
            assert!(
                map.unclaim(start, n),
                "unclaim reports every bit set: {start}+{n}"
            );
            assert_eq!(map.count_set(), 0, "all clear after unclaim of {start}+{n}");
            assert!(
                !map.unclaim(start, n),
                "second unclaim reports a double free"
            );
            assert!(map.try_claim(start, n));
            assert!(
                map.try_unclaim(start, n),
                "try_unclaim of a claimed run {start}+{n}"
            );
            assert!(!map.try_unclaim(start, n), "second try_unclaim {start}+{n}");
            assert!(!map.is_any_claimed(start, n));

            // A claim that meets a set bit at its very end rolls back everything it took.
            map.claim(start + n - 1, 1);
            if n > 1 {
                assert!(
                    !map.try_claim(start, n),
                    "blocked claim {start}+{n} must fail"
                );
            }
            assert_eq!(map.count_set(), 1, "failed claim {start}+{n} left bits set");
            map.unclaim(start + n - 1, 1);
        }
    }
}

#[test]
fn exhaustive_cross_field_claims_8() {
    exhaustive_claims::<AtomicU8>();
}

#[test]
fn exhaustive_cross_field_claims_32() {
    exhaustive_claims::<AtomicU32>();
}

#[test]
fn exhaustive_cross_field_claims_64() {
    exhaustive_claims::<AtomicU64>();
}

#[test]
fn claim_reports_prior_state() {
    let storage = fields::<AtomicU8>(3);
    let map = Bitmap::new(&storage);
    let p = map.claim(6, 6);
    assert!(p.all_clear && p.any_clear);
    let p = map.claim(4, 4);
    assert!(!p.all_clear && p.any_clear);
    let p = map.claim(6, 6);
    assert!(!p.all_clear && !p.any_clear);
    assert_eq!(map.count_set(), 8);
}

/// A tiny deterministic generator, so that failures repeat.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Whether the model has a run of `n` clear bits anywhere.
fn model_has_run(model: &[bool], n: usize) -> bool {
    model.windows(n).any(|w| w.iter().all(|b| !b))
}

/// Random fragmented bitmaps: a found run was clear and is now set (and nothing else changed); no
/// run found means the model has none either.
fn find_matches_model<F: Field>(seed: u64) {
    let bits = F::Word::BITS as usize;
    let mut rng = XorShift(seed);
    let rounds = if cfg!(miri) { 20 } else { 3000 };
    for _ in 0..rounds {
        let count = 1 + rng.below(5);
        let storage = fields::<F>(count);
        let map = Bitmap::new(&storage);
        let density = rng.below(100);
        for i in 0..map.bit_count() {
            if rng.below(100) < density {
                map.claim(i, 1);
            }
        }
        let before = bits_of(&map);
        let n = 1 + rng.below((3 * bits).min(map.bit_count()));
        let start = rng.below(count + 1);
        match map.try_find_claim(start, n) {
            Some(idx) => {
                assert!(
                    before[idx..idx + n].iter().all(|b| !b),
                    "found run was not clear"
                );
                let after = bits_of(&map);
                for i in 0..before.len() {
                    let in_run = (idx..idx + n).contains(&i);
                    assert_eq!(
                        after[i],
                        before[i] || in_run,
                        "bit {i} changed outside the run"
                    );
                }
            }
            None => assert!(!model_has_run(&before, n), "missed a run of {n}"),
        }
    }
}

#[test]
fn find_claim_matches_model_8() {
    find_matches_model::<AtomicU8>(0x9E37_79B9_7F4A_7C15);
}

#[test]
fn find_claim_matches_model_32() {
    find_matches_model::<AtomicU32>(0xD1B5_4A32_D192_ED03);
}

#[test]
fn find_claim_matches_model_64() {
    find_matches_model::<AtomicU64>(0xA076_1D64_78BD_642F);
}

#[test]
fn find_claim_fills_then_fails() {
    let storage = fields::<AtomicUsize>(2);
    let map = Bitmap::new(&storage);
    let mut got = Vec::new();
    while let Some(idx) = map.try_find_claim(1, 3) {
        got.push(idx);
    }
    // The search fills the hint's field first, so how many runs fit depends on the field width;
    // what holds at every width: the runs are disjoint, and no run of three clear bits is left.
    assert!(got.len() >= map.bit_count() / 3 - 1);
    assert_eq!(map.count_set(), 3 * got.len());
    assert!(!model_has_run(&bits_of(&map), 3), "a run was left unfound");
    for idx in got {
        assert!(map.unclaim(idx, 3));
    }
    assert_eq!(map.count_set(), 0);
    assert_eq!(storage[0].load(Relaxed), 0);
}

#[test]
fn find_claim_wraps_around_from_the_hint() {
    let storage = fields::<AtomicU8>(4);
    let map = Bitmap::new(&storage);
    map.claim(8, 24); // fields 1..4 full
    assert_eq!(map.try_find_claim(3, 2), Some(0));
    assert_eq!(
        map.try_find_claim(99, 2),
        Some(2),
        "an out-of-range hint starts at 0"
    );
}

#[test]
fn out_of_range_and_empty_runs() {
    let storage = fields::<AtomicU8>(2);
    let map = Bitmap::new(&storage);
    assert!(!map.in_range(0, 0));
    assert!(!map.in_range(15, 2));
    assert!(!map.in_range(usize::MAX, 2));
    assert!(map.in_range(15, 1));
    assert_eq!(map.try_find_claim(0, 0), None);
    assert_eq!(map.try_find_claim(0, 17), None);
    assert_eq!(map.try_find_claim(0, 16), Some(0));
}

#[cfg(not(miri))]
#[test]
fn threads_never_share_a_bit() {
    extern crate std;
    use std::sync::atomic::AtomicU32 as Owner;
    let storage = fields::<AtomicUsize>(4);
    let owners: Vec<Owner> = (0..storage.len() * usize::BITS as usize)
        .map(|_| Owner::new(0))
        .collect();
    let map = Bitmap::new(&storage);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (map, owners) = (&map, &owners);
            s.spawn(move || {
                let mut rng = XorShift(0x1234_5678 + t);
                for _ in 0..20_000 {
                    let n = 1 + rng.below(80);
                    if let Some(idx) = map.try_find_claim(rng.below(4), n) {
                        for o in &owners[idx..idx + n] {
                            assert_eq!(o.fetch_add(1, Relaxed), 0, "bit owned twice");
                        }
                        for o in &owners[idx..idx + n] {
                            o.fetch_sub(1, Relaxed);
                        }
                        assert!(map.unclaim(idx, n));
                    }
                }
            });
        }
    });
    assert_eq!(map.count_set(), 0);
}
