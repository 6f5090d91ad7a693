//! A page: a run of arena blocks cut into objects of one size class, with its header in the last
//! bytes of the run (so that objects start at the block-aligned page start and are naturally
//! aligned to their size's largest power-of-two factor).
//!
//! Free objects form a singly linked list through their first word; their second word holds a
//! cookie made from their address, which is how a second free of the same object is recognised.
//! Objects that were never handed out are not on the list: they are taken from a bump index, and
//! they still read as zero when the page's memory was zero, which `alloc_zeroed` relies on.

use crate::atomic::{AtomicPtr, AtomicU32, Ordering};
use crate::error::FreeErrorKind;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

/// Bytes reserved for the header at the end of every page: the header's size, a multiple of its
/// cache-line alignment (page ends are block-aligned, so the header starts on a cache line).
pub(crate) const HEADER: usize = core::mem::size_of::<Page>();

/// Marks a free object: its second word holds `address ^ COOKIE`.
const COOKIE: usize = 0x5EED_F00D_CAFE_B0BA_u64 as usize;

/// Divides page offsets by an object size exactly, without a division instruction:
/// `offset / size == offset * ceil(2^44 / size) >> 44` whenever `offset * size < 2^44`, which holds
/// for every page (offsets below 2^23 — pages stay under 8 MiB, as blocks are at most 1 MiB — and
/// sizes at most 2^20), and the product stays below 2^63.
#[derive(Clone, Copy)]
struct Divisor {
    size: u64,
    reciprocal: u64,
}

const DIVISOR_SHIFT: u32 = 44;

impl Divisor {
    fn new(size: usize) -> Divisor {
        Divisor {
            size: size as u64,
            reciprocal: (1u64 << DIVISOR_SHIFT).div_ceil(size as u64),
        }
    }

    /// `offset / size` if `offset` is a multiple of the size (and below 2^23).
    #[inline(always)]
    fn exact(self, offset: usize) -> Option<usize> {
        let offset = offset as u64;
        let index = (offset.min(1 << 23) * self.reciprocal) >> DIVISOR_SHIFT;
        (index * self.size == offset).then_some(index as usize)
    }
}

/// The header of a page. It lives in the page's own last `HEADER` bytes and is reached through
/// pointers derived from the arena's base pointer, only ever as `&Page`: what changes is either an
/// atomic any thread may use, or in `local`, which only the holder of the owner heap touches.
///
/// The layout is fixed, and the header aligned to a cache line, so that everything an allocation
/// or a free reads (down to `local.linked`) lies in the first 64 bytes: one cache line per page.
#[repr(C, align(64))]
pub(crate) struct Page {
    /// The first byte of the page; every object pointer is `start + index * size`. Never changes
    /// (nor do the fields down to `blocks`), so any thread may read them while the page lives.
    pub start: NonNull<u8>,
    divisor: Divisor,
    /// Object size in bytes.
    pub size: u32,
    /// Objects that fit in the page.
    pub capacity: u32,
    /// The size class.
    pub class: u16,
    /// The heap the page belongs to.
    pub owner: u8,
    /// The page's memory read as zero when the page was made: objects never handed out are zero.
    zero: bool,
    /// Blocks of the page, for giving them back.
    pub blocks: u32,
    /// What only the holder of the owner heap reads or writes.
    local: UnsafeCell<Local>,
    /// Objects freed by threads that could not take the owner heap's lock: a list through the
    /// objects' first words (each with its cookie), pushed with compare-and-swap by any thread and
    /// taken whole by the owner.
    pub remote: AtomicPtr<u8>,
    /// Link in the owner heap's stack of pages whose `remote` list became non-empty.
    pub delayed_next: AtomicPtr<Page>,
    /// Objects `[0, handed)` have been handed out at least once: `local.bump`, published for the
    /// checks made without the owner heap (a realloc, a free onto the remote list). Written only
    /// by the owner, after `bump` moves; a thread that holds an object handed out from the page
    /// got it after that write, so it reads this value or a later one.
    handed: AtomicU32,
}

// The fields the fast paths read all sit in the header's first cache line.
const _: () =
    assert!(core::mem::offset_of!(Page, local) + core::mem::offset_of!(Local, linked) < 64);

/// The owner-only part of a page: the fields the fast paths use first.
#[repr(C)]
pub(crate) struct Local {
    /// The first free object (null when none). Every object on the list is a free object of this
    /// page holding the next one in its first word and `address ^ COOKIE` in its second.
    free: *mut u8,
    /// Objects handed out now: handed out at least once (below `bump`), and neither on the free
    /// list nor collected from `remote`.
    pub used: u32,
    /// Objects `[0, bump)` have been handed out at least once; `[bump, capacity)` never were.
    bump: u32,
    /// Whether the page is on its heap's list for its class (it is unless it is full).
    pub linked: bool,
    /// Links of the heap's list of pages of this class that have objects to give.
    pub prev: *mut Page,
    pub next: *mut Page,
}

/// An object handed out by [`Page::pop`].
pub(crate) struct Object {
    pub ptr: NonNull<u8>,
    /// The object was never handed out and the page's memory was zero: it reads as zero.
    pub zero: bool,
}

impl Page {
    /// Makes a page of class `class` (objects of `size` bytes) over `bytes` bytes at `start`, with
    /// its header at the end, owned by heap `owner`, and returns the header.
    ///
    /// # Safety
    /// `[start, start + bytes)` is committed memory owned by the caller, aligned for `Page`, and
    /// `bytes >= HEADER + size`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn init(
        start: NonNull<u8>,
        bytes: usize,
        blocks: u32,
        class: usize,
        size: usize,
        zero: bool,
        owner: u8,
    ) -> NonNull<Page> {
        let capacity = ((bytes - HEADER) / size) as u32;
        // SAFETY: the header's place is inside the run (caller) and aligned (the run's end is
        // block-aligned and `HEADER` a multiple of `Page`'s alignment).
        let header = unsafe { start.add(bytes - HEADER).cast::<Page>() };
        // SAFETY: as above; the place is owned by the caller and holds nothing yet.
        unsafe {
            header.write(Page {
                start,
                capacity,
                size: size as u32,
                class: class as u16,
                owner,
                zero,
                blocks,
                divisor: Divisor::new(size),
                remote: AtomicPtr::new(ptr::null_mut()),
                delayed_next: AtomicPtr::new(ptr::null_mut()),
                handed: AtomicU32::new(0),
                local: UnsafeCell::new(Local {
                    free: ptr::null_mut(),
                    used: 0,
                    bump: 0,
                    linked: false,
                    prev: ptr::null_mut(),
                    next: ptr::null_mut(),
                }),
            })
        };
        header
    }

    /// The owner-only state.
    ///
    /// # Safety
    /// The caller holds the owner heap, and uses the reference only while no other reference to
    /// this page's `Local` is in use.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn local(&self) -> &mut Local {
        // SAFETY: forwarded from the caller: the owner heap's holder is the only one to touch it.
        unsafe { &mut *self.local.get() }
    }

    /// Hands out a free object, or `None` when the page is full.
    ///
    /// # Safety
    /// The caller holds the owner heap.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub unsafe fn pop(&self) -> Option<Object> {
        // SAFETY: forwarded from the caller.
        let local = unsafe { self.local() };
        let object = if let Some(object) = NonNull::new(local.free) {
            // SAFETY: `object` is a free object of this page (invariant on `free`): its first two
            // words are the list link and the cookie, readable and ours.
            unsafe {
                local.free = object.cast::<*mut u8>().read();
                object.cast::<usize>().add(1).write(0);
            }
            Object {
                ptr: object,
                zero: false,
            }
        } else if local.bump < self.capacity {
            // SAFETY: `bump < capacity`, so the object lies inside the page.
            let ptr = unsafe { self.start.add(local.bump as usize * self.size as usize) };
            local.bump += 1;
            self.handed.store(local.bump, Ordering::Relaxed);
            if !self.zero {
                // Memory that held an earlier page may hold a stale cookie right here: clear it, or
                // the first free of this object would look like a second one.
                // SAFETY: the object is inside the page and ours, at least two words long.
                unsafe { ptr.cast::<usize>().add(1).write(0) };
            }
            Object {
                ptr,
                zero: self.zero,
            }
        } else {
            return None;
        };
        local.used += 1;
        Some(object)
    }

    /// Whether `ptr` starts an object of this page (one that may have been handed out: below
    /// `limit` objects from the start).
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    fn starts_object(&self, ptr: NonNull<u8>, limit: u32) -> bool {
        let offset = ptr.addr().get().wrapping_sub(self.start.addr().get());
        matches!(self.divisor.exact(offset), Some(index) if index < limit as usize)
    }

    /// Whether `ptr` starts an object of this page that has been handed out at least once.
    ///
    /// # Safety
    /// The caller holds the owner heap.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub unsafe fn is_handed_out(&self, ptr: NonNull<u8>) -> bool {
        // SAFETY: forwarded from the caller.
        self.starts_object(ptr, unsafe { self.local() }.bump)
    }

    /// Whether the object at `ptr` (an object of this page) is free already.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn is_free(&self, ptr: NonNull<u8>) -> bool {
        // SAFETY: `ptr` starts an object of this page (caller), at least two words long.
        let cookie = unsafe { ptr.cast::<usize>().add(1).read() };
        cookie == ptr.addr().get() ^ COOKIE
    }

    /// Puts the object at `ptr` back on the free list.
    ///
    /// # Safety
    /// The caller holds the owner heap; `ptr` starts an object of this page that is handed out
    /// now, and nobody uses it any more.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub unsafe fn push(&self, ptr: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        let local = unsafe { self.local() };
        // SAFETY: the object is ours again (caller) and at least two words long.
        unsafe {
            ptr.cast::<*mut u8>().write(local.free);
            ptr.cast::<usize>().add(1).write(ptr.addr().get() ^ COOKIE);
        }
        local.free = ptr.as_ptr();
        local.used -= 1;
    }

    /// Checks, without holding the owner heap, that `ptr` starts an object of this page that has
    /// been handed out and is not free.
    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn check_live(&self, ptr: NonNull<u8>) -> Result<(), FreeErrorKind> {
        if !self.starts_object(ptr, self.handed.load(Ordering::Relaxed)) {
            Err(FreeErrorKind::Misaligned)
        } else if self.is_free(ptr) {
            Err(FreeErrorKind::DoubleFree)
        } else {
            Ok(())
        }
    }

    /// Frees the object at `ptr` without holding the owner heap: checks what can be checked
    /// without it (it starts an object of the page, and is not free), then pushes it on the
    /// `remote` list. Returns whether the list was empty before, in which case the caller puts the
    /// page on its owner's delayed stack.
    ///
    /// # Safety
    /// The page is live and `ptr` points into it; if `ptr` is a live object, nobody uses it any
    /// more.
    pub unsafe fn free_remote(&self, ptr: NonNull<u8>) -> Result<bool, FreeErrorKind> {
        self.check_live(ptr)?;
        // SAFETY: `ptr` starts an object of the page, at least two words long, the caller's to
        // give up.
        unsafe { ptr.cast::<usize>().add(1).write(ptr.addr().get() ^ COOKIE) };
        let mut head = self.remote.load(Ordering::Relaxed);
        loop {
            // SAFETY: the object is ours to write (above).
            unsafe { ptr.cast::<*mut u8>().write(head) };
            match self.remote.compare_exchange_weak(
                head,
                ptr.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(head.is_null()),
                Err(actual) => head = actual,
            }
        }
    }

    /// Moves the objects other threads freed onto the free list.
    ///
    /// # Safety
    /// The caller holds the owner heap.
    #[inline(never)]
    pub unsafe fn collect_remote(&self) -> usize {
        let mut object = self.remote.swap(ptr::null_mut(), Ordering::Acquire);
        let mut count = 0;
        while let Some(ptr) = NonNull::new(object) {
            // SAFETY: every object on `remote` is a free object of this page holding the next one
            // in its first word (pushed by `free_remote`), now the heap holder's.
            object = unsafe { ptr.cast::<*mut u8>().read() };
            // SAFETY: as above; `push` relinks it into the local free list.
            unsafe { self.push(ptr) };
            count += 1;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::class::{class_size, CLASSES};

    #[test]
    fn the_divisor_is_exact_for_every_class() {
        for class in 0..CLASSES {
            let size = class_size(class);
            let divisor = Divisor::new(size);
            let domain = (1 << 23) / size;
            let limit = if cfg!(miri) { domain.min(64) } else { domain };
            for index in 0..limit {
                let offset = index * size;
                assert_eq!(
                    divisor.exact(offset),
                    Some(index),
                    "size {size} index {index}"
                );
                for delta in [1, 8, size / 2, size - 1] {
                    if delta > 0 && delta < size {
                        assert_eq!(divisor.exact(offset + delta), None, "size {size} +{delta}");
                    }
                }
            }
        }
    }
}
