//! Atomic bitmaps: claim, release and test runs of bits that may cross field boundaries.
//!
//! This is the bitmap the seed's arena layer is built on (`bitmap.h`, the `_mi_bitmap_*_across`
//! functions of mimalloc): one bit per arena block, in fields of atomic words, every change made with
//! an atomic read-modify-write so that any number of threads can claim and release runs at once.
//!
//! Bits are named by a flat index: bit `i` is bit `i % W::BITS` of field `i / W::BITS`. A run of `n`
//! bits starting at `i` may span any number of fields.
//!
//! A claim that spans fields is not one atomic step: it claims field by field and, when a later field
//! is taken, gives back what it already claimed. Two claims can therefore fail against each other's
//! partial state, but no bit is ever owned by two claimers and a failed claim leaves no bit set.
//!
//! Testing a run checks every field against that field's own mask. (The seed's version of this test,
//! before mimalloc issue #368 was fixed, compared the middle and last fields against the first field's
//! mask.)

mod field;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(test)]
mod tests;

pub use field::{Field, Word};

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

/// How a run looked before [`Bitmap::claim`] set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prior {
    /// Every bit of the run was clear.
    pub all_clear: bool,
    /// At least one bit of the run was clear.
    pub any_clear: bool,
}

/// A view of a slice of atomic fields as one bitmap.
///
/// The bitmap does not own its fields: arenas keep theirs in the static metadata area.
#[derive(Clone, Copy)]
pub struct Bitmap<'a, F: Field> {
    fields: &'a [F],
}

/// The pieces of the run `[idx, idx + n)`: for each field it touches, the field index and the mask of
/// the run's bits in that field.
#[cfg_attr(not(small_code), inline(always))]
#[cfg_attr(small_code, inline)]
fn pieces<W: Word>(idx: usize, n: usize) -> impl Iterator<Item = (usize, W)> {
    let bits = W::BITS as usize;
    let mut field = idx / bits;
    let mut bit = (idx % bits) as u32;
    let mut left = n;
    core::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let take = left.min(bits - bit as usize);
        let piece = (field, W::mask(bit, take as u32));
        left -= take;
        field += 1;
        bit = 0;
        Some(piece)
    })
}

/// The field and mask of `[idx, idx + n)` when the run lies inside one field (the common case, taken
/// without building an iterator).
#[cfg_attr(not(small_code), inline(always))]
#[cfg_attr(small_code, inline)]
fn single<W: Word>(idx: usize, n: usize) -> Option<(usize, W)> {
    let bits = W::BITS as usize;
    let bit = idx % bits;
    (n >= 1 && n <= bits - bit).then(|| (idx / bits, W::mask(bit as u32, n as u32)))
}

/// Bit `i` of the result is set iff bits `i .. i + n` of `free` are all set. Requires `1 <= n <= BITS`.
///
/// Each step doubles (at most) the length of the runs the word stands for, so this takes
/// `log2(n)` shifts instead of `n`.
#[cfg_attr(not(small_code), inline(always))]
#[cfg_attr(small_code, inline)]
fn runs_of<W: Word>(free: W, n: u32) -> W {
    let mut runs = free;
    let mut len = 1;
    while len < n {
        let shift = len.min(n - len);
        runs = runs & (runs >> shift);
        len += shift;
    }
    runs
}

impl<'a, F: Field> Bitmap<'a, F> {
    /// A bitmap over `fields`.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub const fn new(fields: &'a [F]) -> Self {
        Bitmap { fields }
    }

    /// The fields the bitmap is made of.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn fields(&self) -> &'a [F] {
        self.fields
    }

    /// Number of bits: fields × bits per field.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn bit_count(&self) -> usize {
        self.fields.len() * F::Word::BITS as usize
    }

    /// Whether `[idx, idx + n)` is a non-empty run inside the bitmap (without overflow).
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn in_range(&self, idx: usize, n: usize) -> bool {
        n > 0
            && idx
                .checked_add(n)
                .is_some_and(|end| end <= self.bit_count())
    }

    /// Claims the run `[idx, idx + n)` if every bit of it is clear, and reports whether it did.
    ///
    /// All or nothing: when some bit is already set, every bit this call set is cleared again before it
    /// returns `false`. Panics if the run is out of range.
    #[inline]
    pub fn try_claim(&self, idx: usize, n: usize) -> bool {
        match single::<F::Word>(idx, n) {
            Some((field, mask)) => self.try_claim_field(field, mask),
            None => self.try_claim_across(idx, n),
        }
    }

    #[inline(never)]
    fn try_claim_across(&self, idx: usize, n: usize) -> bool {
        assert!(self.in_range(idx, n), "bitmap run out of range");
        let mut done = 0;
        for (field, mask) in pieces::<F::Word>(idx, n) {
            if !self.try_claim_field(field, mask) {
                if done > 0 {
                    // The bits of `[idx, idx + done)` were set by this call and nobody else can have
                    // cleared them: clearing them gives back exactly what was taken.
                    self.unclaim(idx, done);
                }
                return false;
            }
            done += mask.count_ones() as usize;
        }
        true
    }

    /// Claims the longest run `[idx, idx + k)` with `k <= n` whose bits are all clear, trying the
    /// whole run first and one bit less each time; returns `k` (0: not even bit `idx` is clear).
    ///
    /// A purge takes the free blocks of a run marked for it this way: whatever part of the run an
    /// allocation has taken meanwhile stays with that allocation.
    pub fn try_claim_prefix(&self, idx: usize, n: usize) -> usize {
        let mut k = n;
        while k > 0 && !self.try_claim(idx, k) {
            k -= 1;
        }
        k
    }

    /// Sets every bit of `mask` in field `field` if none of them is set yet.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn try_claim_field(&self, field: usize, mask: F::Word) -> bool {
        let cell = &self.fields[field];
        let mut current = cell.load(Relaxed);
        loop {
            if current & mask != F::Word::ZERO {
                return false;
            }
            match cell.compare_exchange_weak(current, current | mask, AcqRel, Relaxed) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Sets every bit of `[idx, idx + n)` whatever it was, and reports how the run looked before.
    ///
    /// For bitmaps that record a state rather than ownership (dirty, committed, purge).
    #[inline]
    pub fn claim(&self, idx: usize, n: usize) -> Prior {
        assert!(self.in_range(idx, n), "bitmap run out of range");
        let mut prior = Prior {
            all_clear: true,
            any_clear: false,
        };
        for (field, mask) in pieces::<F::Word>(idx, n) {
            let before = self.fields[field].fetch_or(mask, AcqRel) & mask;
            prior.all_clear &= before == F::Word::ZERO;
            prior.any_clear |= before != mask;
        }
        prior
    }

    /// Clears every bit of `[idx, idx + n)` and reports whether all of them were set.
    ///
    /// A `false` answer on the in-use bitmap means the run was (at least partly) free already: a
    /// double free.
    #[inline]
    pub fn unclaim(&self, idx: usize, n: usize) -> bool {
        if let Some((field, mask)) = single::<F::Word>(idx, n) {
            return self.fields[field].fetch_and(!mask, AcqRel) & mask == mask;
        }
        self.unclaim_across(idx, n)
    }

    #[inline(never)]
    fn unclaim_across(&self, idx: usize, n: usize) -> bool {
        assert!(self.in_range(idx, n), "bitmap run out of range");
        let mut all_set = true;
        for (field, mask) in pieces::<F::Word>(idx, n) {
            let before = self.fields[field].fetch_and(!mask, AcqRel);
            all_set &= before & mask == mask;
        }
        all_set
    }

    /// Clears `[idx, idx + n)` if every bit of it is set, and reports whether it did; a run that is
    /// not entirely set is left as it is.
    ///
    /// Inside one field this is one atomic step. Across fields the run is tested, then cleared: two
    /// threads releasing the same run at once may both pass the test, and the second
    /// [`unclaim`](Self::unclaim) then reports the run as not entirely set.
    #[inline]
    pub fn try_unclaim(&self, idx: usize, n: usize) -> bool {
        if let Some((field, mask)) = single::<F::Word>(idx, n) {
            let cell = &self.fields[field];
            let mut current = cell.load(Relaxed);
            loop {
                if current & mask != mask {
                    return false;
                }
                match cell.compare_exchange_weak(current, current & !mask, AcqRel, Relaxed) {
                    Ok(_) => return true,
                    Err(actual) => current = actual,
                }
            }
        }
        self.is_claimed(idx, n) && self.unclaim_across(idx, n)
    }

    /// Whether every bit of `[idx, idx + n)` is set.
    #[inline]
    pub fn is_claimed(&self, idx: usize, n: usize) -> bool {
        if let Some((field, mask)) = single::<F::Word>(idx, n) {
            return self.fields[field].load(Acquire) & mask == mask;
        }
        assert!(self.in_range(idx, n), "bitmap run out of range");
        pieces::<F::Word>(idx, n)
            .all(|(field, mask)| self.fields[field].load(Acquire) & mask == mask)
    }

    /// Whether any bit of `[idx, idx + n)` is set.
    #[inline]
    pub fn is_any_claimed(&self, idx: usize, n: usize) -> bool {
        assert!(self.in_range(idx, n), "bitmap run out of range");
        pieces::<F::Word>(idx, n)
            .any(|(field, mask)| self.fields[field].load(Acquire) & mask != F::Word::ZERO)
    }

    /// Whether bit `idx` is set.
    #[inline]
    pub fn is_set(&self, idx: usize) -> bool {
        self.is_claimed(idx, 1)
    }

    /// Number of set bits.
    pub fn count_set(&self) -> usize {
        self.fields
            .iter()
            .map(|f| f.load(Relaxed).count_ones() as usize)
            .sum()
    }

    /// Finds a run of `n` clear bits, claims it, and returns its first bit.
    ///
    /// The search starts at field `start_field` (a hint: any value is accepted) and wraps around to
    /// the fields before it. In each field it first looks for a run inside the field, then for one
    /// that starts in the field's free high bits and continues into the fields after it. On a bitmap
    /// no other thread changes, `None` means there is no run of `n` clear bits anywhere.
    #[inline]
    pub fn try_find_claim(&self, start_field: usize, n: usize) -> Option<usize> {
        let count = self.fields.len();
        let start = if start_field < count { start_field } else { 0 };
        // The common case first: a short run in the field of the hint.
        if n >= 1 && n <= F::Word::BITS as usize && start < count {
            if let Some(idx) = self.try_find_claim_in_field(start, n as u32) {
                return Some(idx);
            }
        }
        self.try_find_claim_everywhere(start, n)
    }

    /// The rest of [`try_find_claim`](Self::try_find_claim): runs that cross out of the hint's field,
    /// then every other field in turn.
    #[inline(never)]
    fn try_find_claim_everywhere(&self, start: usize, n: usize) -> Option<usize> {
        let count = self.fields.len();
        if n == 0 || n > self.bit_count() {
            return None;
        }
        let bits = F::Word::BITS as usize;
        if let Some(idx) = self.try_claim_across_from(start, n) {
            return Some(idx);
        }
        for step in 1..count {
            let field = if start + step < count {
                start + step
            } else {
                start + step - count
            };
            if n <= bits {
                if let Some(idx) = self.try_find_claim_in_field(field, n as u32) {
                    return Some(idx);
                }
            }
            if let Some(idx) = self.try_claim_across_from(field, n) {
                return Some(idx);
            }
        }
        None
    }

    /// Claims the lowest run of `n <= BITS` clear bits that lies inside field `field`.
    #[inline]
    fn try_find_claim_in_field(&self, field: usize, n: u32) -> Option<usize> {
        let cell = &self.fields[field];
        let mut current = cell.load(Relaxed);
        loop {
            let runs = runs_of(!current, n);
            if runs == F::Word::ZERO {
                return None;
            }
            let bit = runs.trailing_zeros();
            let mask = F::Word::mask(bit, n);
            match cell.compare_exchange_weak(current, current | mask, AcqRel, Relaxed) {
                Ok(_) => return Some(field * F::Word::BITS as usize + bit as usize),
                Err(actual) => current = actual,
            }
        }
    }

    /// Claims a run of `n` bits that starts in the clear high bits of field `field` and runs on into
    /// the following fields, if the fields as they are now leave room for it.
    ///
    /// Starting at the lowest of the clear high bits puts as much of the run as possible in `field`,
    /// so if any run crossing out of `field` exists, this one does.
    fn try_claim_across_from(&self, field: usize, n: usize) -> Option<usize> {
        let bits = F::Word::BITS as usize;
        let top_free = self.fields[field].load(Relaxed).leading_zeros() as usize;
        if top_free == 0 || top_free >= n {
            // Nothing to start from, or the run fits in this field (the in-field search covers it).
            return None;
        }
        let start = (field + 1) * bits - top_free;
        let mut left = n - top_free;
        let mut next = field + 1;
        while left > 0 {
            let value = self.fields.get(next)?.load(Relaxed);
            if left >= bits {
                if value != F::Word::ZERO {
                    return None;
                }
                left -= bits;
            } else {
                if (value.trailing_zeros() as usize) < left {
                    return None;
                }
                left = 0;
            }
            next += 1;
        }
        self.try_claim(start, n).then_some(start)
    }
}
