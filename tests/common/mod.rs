//! What several integration tests share.

use allocator_api2::alloc::Allocator;
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;

/// Resizes the allocation at `ptr` (of `layout`) to `new_size` at the same alignment: through
/// `GlobalAlloc::realloc` if `global`, else through `Allocator::grow` or `shrink`. `None` when the
/// allocator refuses.
///
/// # Safety
/// `ptr` is a live allocation of `alloc` with `layout`, and `new_size`, rounded up to the
/// alignment, is at most `isize::MAX`.
pub unsafe fn resize<Q>(
    alloc: &Q,
    ptr: NonNull<u8>,
    layout: Layout,
    new_size: usize,
    global: bool,
) -> Option<NonNull<u8>>
where
    Q: GlobalAlloc,
    for<'a> &'a Q: Allocator,
{
    let new_layout = Layout::from_size_align(new_size, layout.align()).ok()?;
    if global {
        // SAFETY: forwarded from the caller.
        NonNull::new(unsafe { alloc.realloc(ptr.as_ptr(), layout, new_size) })
    } else if new_size >= layout.size() {
        // SAFETY: forwarded from the caller; the new layout is no smaller.
        unsafe { alloc.grow(ptr, layout, new_layout) }
            .ok()
            .map(NonNull::cast)
    } else {
        // SAFETY: forwarded from the caller; the new layout is no larger.
        unsafe { alloc.shrink(ptr, layout, new_layout) }
            .ok()
            .map(NonNull::cast)
    }
}

/// Fills the first `len` bytes at `ptr` with `byte`. Callers pass a live allocation of at least
/// `len` bytes.
pub fn fill(ptr: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: callers pass a live allocation of at least `len` bytes.
    unsafe { ptr.as_ptr().write_bytes(byte, len) };
}

/// Whether the first `len` bytes at `ptr` all hold `byte`, compared a chunk at a time (which is
/// `memcmp`, fast in debug builds too). Callers pass a live allocation of at least `len` bytes.
pub fn holds(ptr: NonNull<u8>, len: usize, byte: u8) -> bool {
    let pattern = [byte; 4096];
    // SAFETY: callers pass a live allocation of at least `len` bytes.
    unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) }
        .chunks(pattern.len())
        .all(|chunk| chunk == &pattern[..chunk.len()])
}
