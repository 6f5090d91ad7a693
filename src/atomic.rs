//! The atomic types the crate is built on, chosen in one place.
//!
//! Targets with compare-and-swap use `core`'s atomics. Targets without it (thumbv6m: ARMv6-M has no
//! `LDREX`/`STREX`, see the ARMv6-M Architecture Reference Manual, A3.5) use `portable-atomic`, which
//! makes read-modify-write operations atomic with a critical section. The loom model checker does not
//! come through here: the bitmap is generic over its field type and loom's atomics are plugged in there
//! (see [`crate::bitmap::Field`]), because loom's types cannot be built in a `const fn` and the rest of
//! the crate must stay const-constructible.

cfg_if::cfg_if! {
    if #[cfg(target_has_atomic = "ptr")] {
        pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize};
        #[cfg(target_has_atomic = "64")]
        pub(crate) use core::sync::atomic::AtomicU64;
    } else {
        pub(crate) use portable_atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize};
    }
}

pub(crate) use core::sync::atomic::Ordering;
