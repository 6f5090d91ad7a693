//! The word types a bitmap is made of: plain integers ([`Word`]) and the atomics that hold them
//! ([`Field`]).
//!
//! The arenas use `AtomicUsize` fields. The tests also use 8-, 32- and 64-bit fields, so that the
//! cross-field logic is exercised at several widths, and under `cfg(loom)` loom's atomics implement
//! [`Field`] too, so the model checker can explore the same code the allocator runs.

use core::ops::{BitAnd, BitOr, Not, Shl, Shr};
use core::sync::atomic::Ordering;

/// An unsigned integer used as a row of bits.
pub trait Word:
    Copy
    + Eq
    + core::fmt::Debug
    + BitAnd<Output = Self>
    + BitOr<Output = Self>
    + Not<Output = Self>
    + Shl<u32, Output = Self>
    + Shr<u32, Output = Self>
{
    /// Number of bits in the word.
    const BITS: u32;
    /// All bits clear.
    const ZERO: Self;
    /// All bits set.
    const ONES: Self;
    /// Number of clear bits below the lowest set bit (`BITS` for zero).
    fn trailing_zeros(self) -> u32;
    /// Number of clear bits above the highest set bit (`BITS` for zero).
    fn leading_zeros(self) -> u32;
    /// Number of set bits.
    fn count_ones(self) -> u32;

    /// The mask of `n` bits starting at bit `bit`.
    ///
    /// Requires `1 <= n` and `bit + n <= BITS`.
    #[inline(always)]
    fn mask(bit: u32, n: u32) -> Self {
        debug_assert!(n >= 1 && bit + n <= Self::BITS);
        (Self::ONES >> (Self::BITS - n)) << bit
    }
}

/// An atomic cell holding one [`Word`] of a bitmap.
pub trait Field: Sync {
    /// The integer type the field holds.
    type Word: Word;
    /// A field with the given bits.
    fn new(value: Self::Word) -> Self;
    /// Atomic load.
    fn load(&self, order: Ordering) -> Self::Word;
    /// Atomic store.
    fn store(&self, value: Self::Word, order: Ordering);
    /// Atomic compare-and-swap that may fail spuriously.
    fn compare_exchange_weak(
        &self,
        current: Self::Word,
        new: Self::Word,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Self::Word, Self::Word>;
    /// Atomic or; returns the previous value.
    fn fetch_or(&self, value: Self::Word, order: Ordering) -> Self::Word;
    /// Atomic and; returns the previous value.
    fn fetch_and(&self, value: Self::Word, order: Ordering) -> Self::Word;
}

macro_rules! impl_word {
    ($($t:ty),*) => {$(
        impl Word for $t {
            const BITS: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            const ONES: Self = <$t>::MAX;
            #[inline(always)]
            fn trailing_zeros(self) -> u32 { <$t>::trailing_zeros(self) }
            #[inline(always)]
            fn leading_zeros(self) -> u32 { <$t>::leading_zeros(self) }
            #[inline(always)]
            fn count_ones(self) -> u32 { <$t>::count_ones(self) }
        }
    )*};
}
impl_word!(u8, u16, u32, u64, usize);

macro_rules! impl_field {
    ($atomic:ty, $word:ty) => {
        impl Field for $atomic {
            type Word = $word;
            #[cfg_attr(not(small_code), inline(always))]
            #[cfg_attr(small_code, inline)]
            fn new(value: $word) -> Self {
                <$atomic>::new(value)
            }
            #[inline(always)]
            fn load(&self, order: Ordering) -> $word {
                <$atomic>::load(self, order)
            }
            #[inline(always)]
            fn store(&self, value: $word, order: Ordering) {
                <$atomic>::store(self, value, order)
            }
            #[inline(always)]
            fn compare_exchange_weak(
                &self,
                current: $word,
                new: $word,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$word, $word> {
                <$atomic>::compare_exchange_weak(self, current, new, success, failure)
            }
            #[inline(always)]
            fn fetch_or(&self, value: $word, order: Ordering) -> $word {
                <$atomic>::fetch_or(self, value, order)
            }
            #[inline(always)]
            fn fetch_and(&self, value: $word, order: Ordering) -> $word {
                <$atomic>::fetch_and(self, value, order)
            }
        }
    };
}

impl_field!(crate::atomic::AtomicUsize, usize);
impl_field!(crate::atomic::AtomicU32, u32);
impl_field!(crate::atomic::AtomicU8, u8);
#[cfg(target_has_atomic = "64")]
impl_field!(crate::atomic::AtomicU64, u64);

#[cfg(loom)]
impl_field!(loom::sync::atomic::AtomicUsize, usize);
#[cfg(loom)]
impl_field!(loom::sync::atomic::AtomicU8, u8);
