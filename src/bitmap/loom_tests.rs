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
