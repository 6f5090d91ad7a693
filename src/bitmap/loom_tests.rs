//! Loom models of concurrent claims that straddle a field boundary.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib bitmap::loom`.

extern crate std;
use std::vec::Vec;

use super::Bitmap;
use loom::sync::atomic::AtomicU8;
use loom::sync::Arc;
use loom::thread;

fn bitmap_storage() -> Arc<Vec<AtomicU8>> {
    Arc::new((0..3).map(|_| AtomicU8::new(0)).collect())
}

/// Two claimers whose runs overlap across the boundary between fields 0 and 1, while a third thread
/// releases a run that one of them needs. No bit is owned twice, none is lost, all clear at the end.
#[test]
fn straddling_claims_against_an_unclaim() {
    loom::model(|| {
        let storage = bitmap_storage();
        // The run 9..11 is held at the start and released by the third thread.
        assert!(Bitmap::new(&storage).try_claim(9, 2));

        let a = {
            let storage = storage.clone();
            thread::spawn(move || Bitmap::new(&storage).try_claim(6, 4).then_some((6, 4)))
        };
        let b = {
            let storage = storage.clone();
            thread::spawn(move || Bitmap::new(&storage).try_find_claim(0, 11))
        };
        let releaser = {
            let storage = storage.clone();
            thread::spawn(move || assert!(Bitmap::new(&storage).unclaim(9, 2)))
        };
        let a = a.join().unwrap();
        let b = b.join().unwrap().map(|idx| (idx, 11));
        releaser.join().unwrap();

        let map = Bitmap::new(&storage);
        let mut owned = [false; 24];
        for (idx, n) in [a, b].into_iter().flatten() {
            for bit in &mut owned[idx..idx + n] {
                assert!(!*bit, "bit owned twice");
                *bit = true;
            }
        }
        for (i, &o) in owned.iter().enumerate() {
            assert_eq!(map.is_set(i), o, "bit {i}: bitmap and owners disagree");
        }
        for (idx, n) in [a, b].into_iter().flatten() {
            assert!(map.unclaim(idx, n), "a claimed run lost a bit");
        }
        assert_eq!(map.count_set(), 0);
    });
}

/// Two threads find-and-claim runs of three fields' width minus one from different hints: they may
/// both succeed or one may fail against the other's partial claim, but never overlap.
#[test]
fn racing_finds_across_three_fields() {
    loom::model(|| {
        let storage = bitmap_storage();
        let spawn = |hint: usize| {
            let storage = storage.clone();
            thread::spawn(move || Bitmap::new(&storage).try_find_claim(hint, 7))
        };
        let (a, b) = (spawn(0), spawn(2));
        let runs: Vec<usize> = [a.join().unwrap(), b.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        if let [x, y] = runs[..] {
            assert!(x + 7 <= y || y + 7 <= x, "runs {x} and {y} overlap");
        }
        let map = Bitmap::new(&storage);
        assert_eq!(map.count_set(), 7 * runs.len());
        for idx in runs {
            assert!(map.unclaim(idx, 7));
        }
        assert_eq!(map.count_set(), 0);
    });
}

/// A purge and an allocation race for a run of free blocks marked for purging, across the
/// boundary between fields 0 and 1: the purge owns the blocks it purges by claiming their in-use
/// bits (as long a prefix of the marked run as it can), the allocation clears the marks of what it
/// claims. No block is ever held by both, and no block the allocation holds is purged.
#[test]
fn a_purge_claim_against_an_allocation_claim() {
    loom::model(|| {
        let in_use = bitmap_storage();
        let marks = bitmap_storage();
        // Blocks 0..6 are in use; 6..10 are free and marked for purging.
        assert!(Bitmap::new(&in_use).try_claim(0, 6));
        assert!(Bitmap::new(&marks).try_claim(6, 4));
        // Who holds each block now: 0 nobody (or the set-up), 1 the purge, 2 the allocation.
        let holder = Arc::new((0..24).map(|_| AtomicU8::new(0)).collect::<Vec<_>>());
        let hold = |holder: &[AtomicU8], idx: usize, n: usize, who: u8| {
            for h in &holder[idx..idx + n] {
                let was = h.swap(who, loom::sync::atomic::Ordering::AcqRel);
                assert_eq!(was, 0, "block held twice");
            }
        };
        let purger = {
            let (in_use, marks, holder) = (in_use.clone(), marks.clone(), holder.clone());
            thread::spawn(move || {
                let owned = Bitmap::new(&in_use).try_claim_prefix(6, 4);
                if owned > 0 {
                    hold(&holder, 6, owned, 1);
                    let marks = Bitmap::new(&marks);
                    // Only what is still marked, now that it is ours, is purged.
                    for block in 6..6 + owned {
                        if marks.is_set(block) {
                            assert!(marks.unclaim(block, 1));
                        }
                    }
                    for h in &holder[6..6 + owned] {
                        h.store(0, loom::sync::atomic::Ordering::Release);
                    }
                    assert!(Bitmap::new(&in_use).unclaim(6, owned));
                }
                owned
            })
        };
        let allocator = {
            let (in_use, marks, holder) = (in_use.clone(), marks.clone(), holder.clone());
            thread::spawn(move || {
                let idx = Bitmap::new(&in_use).try_find_claim(0, 3)?;
                hold(&holder, idx, 3, 2);
                let marks = Bitmap::new(&marks);
                if marks.is_any_claimed(idx, 3) {
                    marks.unclaim(idx, 3);
                }
                Some(idx)
            })
        };
        purger.join().unwrap();
        let got = allocator.join().unwrap();
        let (in_use, marks) = (Bitmap::new(&in_use), Bitmap::new(&marks));
        if let Some(idx) = got {
            for block in idx..idx + 3 {
                assert!(in_use.is_set(block), "the allocation lost a block");
                assert!(!marks.is_set(block), "a held block is still marked");
            }
        }
        // Nothing but the set-up and the allocation holds blocks at the end.
        let held = 6 + if got.is_some() { 3 } else { 0 };
        assert_eq!(in_use.count_set(), held);
    });
}
