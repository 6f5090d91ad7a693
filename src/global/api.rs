//! The standard allocator interfaces: `GlobalAlloc`, and `allocator_api2::Allocator` on `&Quarry`.

use super::{ArenaHeap, Quarry};
use crate::backend::OsBackend;
use crate::front::{empty, resize, Reallocate};
use crate::sync::RawLock;
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

// SAFETY: every pointer handed out is a fresh allocation of at least `layout.size()` bytes aligned to
// `layout.align()` (the heap's contract), zeroed for `alloc_zeroed`; `realloc` keeps the contents up
// to the smaller size; bad frees are refused without touching the heap.
unsafe impl<B: OsBackend + Sync, L: RawLock, const H: usize, const M: usize, const N: usize>
    GlobalAlloc for Quarry<B, L, H, M, N>
{
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocate_ptr(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.allocate_zeroed(layout.size(), layout.align())
            .map_or(ptr::null_mut(), |a| a.ptr.as_ptr())
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: the caller gives up the allocation (`GlobalAlloc::dealloc`'s contract).
            unsafe { self.deallocate(ptr, layout.size()) };
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(ptr) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        // SAFETY: `GlobalAlloc::realloc`'s contract: `ptr` is a live allocation with `layout`.
        unsafe { self.reallocate(ptr, layout.size(), new_size, layout.align()) }
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

/// `allocator_api2::Allocator` for `&$ty`, forwarding to its `allocate`, `allocate_zeroed`,
/// `deallocate` and `reallocate`.
macro_rules! impl_allocator {
    ($ty:ty) => {
        // SAFETY: as for `GlobalAlloc` above; zero-sized requests get a dangling pointer and are
        // never freed into a heap, and every allocation stays valid until deallocated, even if
        // the reference is copied.
        unsafe impl<B: OsBackend + Sync, L: RawLock, const H: usize, const M: usize, const N: usize>
            Allocator for &$ty
        {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                if layout.size() == 0 {
                    return Ok(empty(layout));
                }
                let a = <$ty>::allocate(self, layout.size(), layout.align()).ok_or(AllocError)?;
                Ok(NonNull::slice_from_raw_parts(a.ptr, a.usable))
            }

            #[inline]
            fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                if layout.size() == 0 {
                    return Ok(empty(layout));
                }
                let a = <$ty>::allocate_zeroed(self, layout.size(), layout.align())
                    .ok_or(AllocError)?;
                Ok(NonNull::slice_from_raw_parts(a.ptr, layout.size()))
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                if layout.size() != 0 {
                    // SAFETY: the caller gives up the allocation (`deallocate`'s contract).
                    unsafe { <$ty>::deallocate(self, ptr, layout.size()) };
                }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: `grow`'s contract: `ptr` is live with `old`, `new.size() >= old.size()`.
                unsafe { resize(self, *self, ptr, old, new) }
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: as for `grow`.
                let grown = unsafe { resize(self, *self, ptr, old, new) }?;
                // SAFETY: the new allocation holds `new.size()` bytes, of which the first
                // `old.size()` are the old contents.
                unsafe {
                    grown
                        .cast::<u8>()
                        .as_ptr()
                        .add(old.size())
                        .write_bytes(0, new.size() - old.size())
                };
                Ok(NonNull::slice_from_raw_parts(grown.cast(), new.size()))
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: `shrink`'s contract: `ptr` is live with `old`, `new.size() <= old.size()`.
                unsafe { resize(self, *self, ptr, old, new) }
            }
        }
    };
}

impl_allocator!(Quarry<B, L, H, M, N>);
impl_allocator!(ArenaHeap<'_, B, L, H, M, N>);
