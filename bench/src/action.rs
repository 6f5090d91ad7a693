//! One action of workload 1 ("random actions", after talc's published method), shared by the host
//! benchmark (`random_actions.rs`, `efficiency.rs`) and the wasm one (`bench-wasm/speed`, which
//! includes this file by path).
//!
//! An action is drawn from `0..draws` (7 with realloc, 6 without): 6 reallocates a random live
//! allocation to `rand(1..3*max)`; below 3, or while fewer than `min_live` allocations are live, it
//! allocates `rand(4..rand(16..max))` bytes at a mostly-word alignment; otherwise it frees a random
//! live allocation. Every allocation has its first and last byte written (a program uses what it
//! allocates), and a realloc checks that the first byte survived.

use crate::rng::Rng;
use core::alloc::{GlobalAlloc, Layout};

/// Reallocations go to `rand(1..REALLOC_MULTIPLE * max)`.
pub const REALLOC_MULTIPLE: usize = 3;

/// A size in `4..rand(16..max)`: biased towards small sizes, as talc's method draws them.
pub fn gen_size(rng: &mut Rng, max: usize) -> usize {
    let cap = rng.range(16, max);
    rng.range(4, cap)
}

/// The word alignment, doubled per two trailing zeros of a random `u16`: 75% word, 19% 2×word,
/// 4.7% 4×word, and so on up to 256×word.
pub fn gen_align(rng: &mut Rng) -> usize {
    core::mem::align_of::<usize>() << (rng.next_u16().trailing_zeros() / 2)
}

/// A live allocation of the workload, with the byte written at both its ends.
pub struct Live {
    pub ptr: *mut u8,
    pub layout: Layout,
    pub tag: u8,
}

/// What an action did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// An allocation, a free or a reallocation succeeded.
    Action,
    /// An allocation or reallocation returned null.
    Failed,
    /// A reallocation was drawn with nothing live.
    Nothing,
}

/// The live allocations of one thread and the tag of the last one.
pub struct Actions {
    pub live: Vec<Live>,
    tag: u8,
    draws: usize,
    max: usize,
    min_live: usize,
}

impl Actions {
    /// Actions with sizes up to `max`, with realloc or not, allocating while fewer than
    /// `min_live` allocations are live; room for `capacity` live ones is made now.
    pub fn new(max: usize, realloc: bool, min_live: usize, capacity: usize) -> Self {
        Actions {
            live: Vec::with_capacity(capacity),
            tag: 0,
            draws: if realloc { 7 } else { 6 },
            max,
            min_live,
        }
    }

    /// Draws one action and does it with `alloc`.
    ///
    /// # Safety
    /// Every allocation in `self.live` came from `alloc` (the same allocator every call).
    #[inline(always)]
    pub unsafe fn act<A: GlobalAlloc + ?Sized>(&mut self, alloc: &A, rng: &mut Rng) -> Done {
        let draw = rng.range(0, self.draws);
        if draw == 6 {
            if self.live.is_empty() {
                return Done::Nothing;
            }
            let index = rng.range(0, self.live.len());
            let new_size = rng.range(1, REALLOC_MULTIPLE * self.max);
            let entry = &mut self.live[index];
            // SAFETY: `entry.ptr` is live, from `alloc` (caller), with `entry.layout`; the new
            // size is non-zero and far below isize::MAX.
            let p = unsafe { alloc.realloc(entry.ptr, entry.layout, new_size) };
            if p.is_null() {
                return Done::Failed;
            }
            // SAFETY: `p` points to `new_size` bytes that now hold the old contents' prefix.
            unsafe {
                assert_eq!(p.read(), entry.tag, "realloc lost the first byte");
                p.add(new_size - 1).write_volatile(entry.tag);
            }
            entry.ptr = p;
            // SAFETY: the alignment is the old (valid) one, the size was accepted by realloc.
            entry.layout =
                unsafe { Layout::from_size_align_unchecked(new_size, entry.layout.align()) };
            Done::Action
        } else if draw < 3 || self.live.len() < self.min_live {
            let size = gen_size(rng, self.max);
            let align = gen_align(rng);
            // SAFETY: `align` is a power of two ≤ 2048 and `size` is small.
            let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
            // SAFETY: non-zero size.
            let p = unsafe { alloc.alloc(layout) };
            if p.is_null() {
                return Done::Failed;
            }
            self.tag = self.tag.wrapping_add(1);
            // SAFETY: `p` points to `size` (≥ 4) writable bytes.
            unsafe {
                p.write_volatile(self.tag);
                p.add(size - 1).write_volatile(self.tag);
            }
            self.live.push(Live {
                ptr: p,
                layout,
                tag: self.tag,
            });
            Done::Action
        } else {
            let index = rng.range(0, self.live.len());
            let entry = self.live.swap_remove(index);
            // SAFETY: live, from `alloc` (caller), with this layout; not used again.
            unsafe { alloc.dealloc(entry.ptr, entry.layout) };
            Done::Action
        }
    }

    /// Frees everything still live.
    ///
    /// # Safety
    /// As for [`act`](Self::act).
    pub unsafe fn free_all<A: GlobalAlloc + ?Sized>(&mut self, alloc: &A) {
        for entry in self.live.drain(..) {
            // SAFETY: live, from `alloc` (caller), with this layout.
            unsafe { alloc.dealloc(entry.ptr, entry.layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_alignments_follow_the_method() {
        let mut rng = Rng::new(7);
        for _ in 0..10_000 {
            let s = gen_size(&mut rng, 200);
            assert!((4..199).contains(&s));
            let a = gen_align(&mut rng);
            assert!(a.is_power_of_two() && (8..=8 << 8).contains(&a));
        }
        let word = (0..100_000).filter(|_| gen_align(&mut rng) == 8).count();
        assert!((70_000..80_000).contains(&word), "{word}");
    }
}
