//! A page: a run of arena blocks cut into objects of one size class, with its header in the last
//! bytes of the run (so that objects start at the block-aligned page start and are naturally
//! aligned to their size's largest power-of-two factor).
//!
//! Free objects form a singly linked list through their first word; their second word holds a
//! cookie made from their address, which is how a second free of the same object is recognised.
//! Objects that were never handed out are not on the list: they are taken from a bump index, and
//! they still read as zero when the page's memory was zero, which `alloc_zeroed` relies on.

use core::ptr::{self, NonNull};

/// Bytes reserved for the header at the end of every page.
pub(crate) const HEADER: usize = 128;

/// Marks a free object: its second word holds `address ^ COOKIE`.
const COOKIE: usize = 0x5EED_F00D_CAFE_B0BA_u64 as usize;

/// Divides page offsets by an object size exactly, without a division instruction:
/// `offset / size == offset * ceil(2^44 / size) >> 44` whenever `offset * size < 2^44`, which holds
/// for every page (offsets below 2^22, sizes at most 2^20), and the product fits in 64 bits.
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

    /// `offset / size` if `offset` is a multiple of the size (and below 2^22).
    #[inline(always)]
    fn exact(self, offset: usize) -> Option<usize> {
        let offset = offset as u64;
        let index = (offset.min(1 << 22) * self.reciprocal) >> DIVISOR_SHIFT;
        (index * self.size == offset).then_some(index as usize)
    }
}

/// The header of a page. It lives in the page's own last `HEADER` bytes and is reached through
/// pointers derived from the arena's base pointer.
pub(crate) struct Page {
    /// The first byte of the page; every object pointer is `start + index * size`.
    pub start: NonNull<u8>,
    /// The first free object (null when none). Every object on the list is a free object of this
    /// page holding the next one in its first word and `address ^ COOKIE` in its second.
    free: *mut u8,
    /// Objects handed out now: handed out at least once (below `bump`) and not on the free list.
    pub used: u32,
    /// Objects `[0, bump)` have been handed out at least once; `[bump, capacity)` never were.
    bump: u32,
    /// Objects that fit in the page.
    pub capacity: u32,
    /// Object size in bytes.
    pub size: u32,
    /// The size class.
    pub class: u16,
    /// The page's memory read as zero when the page was made: objects never handed out are zero.
    zero: bool,
    /// Whether the page is on its heap's list for its class (it is unless it is full).
    pub linked: bool,
    divisor: Divisor,
    /// Links of the heap's list of pages of this class that have objects to give.
    pub prev: *mut Page,
    pub next: *mut Page,
    /// Blocks of the page, for giving them back.
    pub blocks: u32,
}

/// An object handed out by [`Page::pop`].
pub(crate) struct Object {
    pub ptr: NonNull<u8>,
    /// The object was never handed out and the page's memory was zero: it reads as zero.
    pub zero: bool,
}

impl Page {
    /// Makes a page of class `class` (objects of `size` bytes) over `bytes` bytes at `start`, with
    /// its header at the end, and returns the header.
    ///
    /// # Safety
    /// `[start, start + bytes)` is committed memory owned by the caller, aligned for `Page`, and
    /// `bytes >= HEADER + size`.
    pub unsafe fn init(
        start: NonNull<u8>,
        bytes: usize,
        blocks: u32,
        class: usize,
        size: usize,
        zero: bool,
    ) -> NonNull<Page> {
        let capacity = ((bytes - HEADER) / size) as u32;
        // SAFETY: the header's place is inside the run (caller) and aligned (the run's end is
        // block-aligned and `HEADER` a multiple of `Page`'s alignment).
        let header = unsafe { start.add(bytes - HEADER).cast::<Page>() };
        // SAFETY: as above; the place is owned by the caller and holds nothing yet.
        unsafe {
            header.write(Page {
                start,
                free: ptr::null_mut(),
                used: 0,
                bump: 0,
                capacity,
                size: size as u32,
                class: class as u16,
                zero,
                linked: false,
                divisor: Divisor::new(size),
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
                blocks,
            })
        };
        header
    }

    /// Hands out a free object, or `None` when the page is full.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Object> {
        let object = if let Some(object) = NonNull::new(self.free) {
            // SAFETY: `object` is a free object of this page (invariant on `free`): its first two
            // words are the list link and the cookie, readable and ours.
            unsafe {
                self.free = object.cast::<*mut u8>().read();
                object.cast::<usize>().add(1).write(0);
            }
            Object {
                ptr: object,
                zero: false,
            }
        } else if self.bump < self.capacity {
            // SAFETY: `bump < capacity`, so the object lies inside the page.
            let ptr = unsafe { self.start.add(self.bump as usize * self.size as usize) };
            self.bump += 1;
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
        self.used += 1;
        Some(object)
    }

    /// The index of the object that starts at `ptr`, if `ptr` is the start of an object of this
    /// page that has been handed out at least once.
    #[inline(always)]
    pub fn index_of(&self, ptr: NonNull<u8>) -> Option<usize> {
        let offset = ptr.addr().get().wrapping_sub(self.start.addr().get());
        let index = self.divisor.exact(offset)?;
        (index < self.bump as usize).then_some(index)
    }

    /// Whether the object at `ptr` (an object of this page) is free already.
    #[inline(always)]
    pub fn is_free(&self, ptr: NonNull<u8>) -> bool {
        // SAFETY: `ptr` starts an object of this page (caller), at least two words long.
        let cookie = unsafe { ptr.cast::<usize>().add(1).read() };
        cookie == ptr.addr().get() ^ COOKIE
    }

    /// Puts the object at `ptr` back on the free list.
    ///
    /// # Safety
    /// `ptr` starts an object of this page that is handed out now, and nobody uses it any more.
    #[inline(always)]
    pub unsafe fn push(&mut self, ptr: NonNull<u8>) {
        // SAFETY: the object is ours again (caller) and at least two words long.
        unsafe {
            ptr.cast::<*mut u8>().write(self.free);
            ptr.cast::<usize>().add(1).write(ptr.addr().get() ^ COOKIE);
        }
        self.free = ptr.as_ptr();
        self.used -= 1;
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
            let limit = if cfg!(miri) { 64 } else { (1 << 22) / size };
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
