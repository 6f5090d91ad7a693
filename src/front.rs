//! What the two front ends, `Quarry` and `Compact`, share to implement
//! `allocator_api2::Allocator`: zero-sized allocations, and `grow` and `shrink` through the front
//! end's own resize.

use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::ptr::{self, NonNull};

/// A zero-sized allocation: a dangling pointer aligned as asked, never passed to an engine.
pub(crate) fn empty(layout: Layout) -> NonNull<[u8]> {
    // SAFETY: a layout's alignment is a non-zero power of two, so it is a valid non-null address;
    // `without_provenance_mut` is the strict-provenance way to name it.
    let dangling = unsafe { NonNull::new_unchecked(ptr::without_provenance_mut(layout.align())) };
    NonNull::slice_from_raw_parts(dangling, 0)
}

/// The front ends' own resize: in place when the allocation allows, else moved (see
/// `Quarry::reallocate_in`).
pub(crate) trait Reallocate {
    /// # Safety
    /// `ptr` is a live allocation of at least `old_size` bytes that nobody else uses meanwhile.
    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new_size: usize,
        align: usize,
    ) -> Option<NonNull<u8>>;
}

/// `grow` and `shrink` for `allocator` (which is `&front`): to and from size 0 through the
/// `Allocator` methods, the rest through the front end's own resize.
///
/// # Safety
/// `ptr` is live with `old` (or dangling when `old.size()` is 0).
pub(crate) unsafe fn resize<A: Allocator, F: Reallocate>(
    allocator: &A,
    front: &F,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
) -> Result<NonNull<[u8]>, AllocError> {
    if old.size() == 0 {
        return allocator.allocate(new);
    }
    if new.size() == 0 {
        // SAFETY: forwarded from the caller.
        unsafe { allocator.deallocate(ptr, old) };
        return Ok(empty(new));
    }
    // SAFETY: forwarded from the caller.
    let moved =
        unsafe { front.reallocate(ptr, old.size(), new.size(), new.align()) }.ok_or(AllocError)?;
    Ok(NonNull::slice_from_raw_parts(moved, new.size()))
}
