//! The module's exports: the allocator's `GlobalAlloc`, one call each.

use crate::ALLOCATOR;
use core::alloc::{GlobalAlloc, Layout};

/// Allocates `size` bytes aligned to `align`; null on failure.
///
/// # Safety
/// `size` is non-zero and at most `isize::MAX` rounded down to `align`, which is a power of two.
#[no_mangle]
pub unsafe extern "C" fn alloc(size: usize, align: usize) -> *mut u8 {
    // SAFETY: the layout is valid and non-zero, by the caller's promise.
    unsafe { ALLOCATOR.alloc(Layout::from_size_align_unchecked(size, align)) }
}

/// Frees what [`alloc`] or [`realloc`] returned for this size and alignment.
///
/// # Safety
/// `ptr` is live, from this module's allocator, with exactly this size and alignment.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, size: usize, align: usize) {
    // SAFETY: the caller's promise.
    unsafe { ALLOCATOR.dealloc(ptr, Layout::from_size_align_unchecked(size, align)) }
}

/// Moves an allocation to `new_size` bytes (same alignment), keeping its contents; null on
/// failure (the old one is then still live).
///
/// # Safety
/// As for [`dealloc`], and `new_size` is valid with `align` as for [`alloc`].
#[no_mangle]
pub unsafe extern "C" fn realloc(
    ptr: *mut u8,
    size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    // SAFETY: the caller's promise.
    unsafe {
        ALLOCATOR.realloc(
            ptr,
            Layout::from_size_align_unchecked(size, align),
            new_size,
        )
    }
}
