//! Size classes: 8-byte steps up to 64 bytes, then 8 classes per power of two, so that a rounded-up
//! request wastes less than 12.5% of its size above 64 bytes. Size to class is a table load up to
//! 1 KiB and a few shifts above (all shifts in builds for size), class to size a few shifts; no
//! loop.

/// The smallest object: two words, so that a free object can hold the free-list link and the
/// double-free cookie.
pub(crate) const MIN_SIZE: usize = 2 * core::mem::size_of::<usize>();

/// The largest size a class can have: 1 MiB. (The heap uses classes up to a bound set by the block
/// size, below this.)
pub(crate) const MAX_CLASS_SIZE: usize = 1 << 20;

/// Number of classes: 8 of 8-byte steps up to 64, then 8 per power of two up to `MAX_CLASS_SIZE`.
pub(crate) const CLASSES: usize = 8 + 8 * (MAX_CLASS_SIZE.trailing_zeros() as usize - 6);

/// Requests up to this size find their class in a table.
#[cfg(not(opt_size))]
const TABLE_LIMIT: usize = 1024;

/// `TABLE[(size + 7) / 8]` is the class of a request of `size` bytes, for sizes up to
/// `TABLE_LIMIT`: one load instead of the arithmetic of `compute_class`. Builds for size do without
/// its 129 bytes.
#[cfg(not(opt_size))]
static TABLE: [u8; TABLE_LIMIT / 8 + 1] = {
    let mut table = [0u8; TABLE_LIMIT / 8 + 1];
    let mut i = 0;
    while i < table.len() {
        table[i] = compute_class(if i == 0 { 1 } else { i * 8 }) as u8;
        i += 1;
    }
    table
};

/// The class of a request of `size` bytes (`1 <= size <= MAX_CLASS_SIZE`).
#[cfg_attr(not(small_code), inline(always))]
#[cfg_attr(small_code, inline)]
pub(crate) fn class_of(size: usize) -> usize {
    #[cfg(opt_size)]
    return compute_class(size);
    #[cfg(not(opt_size))]
    if size <= TABLE_LIMIT {
        TABLE[(size + 7) >> 3] as usize
    } else {
        compute_class(size)
    }
}

/// The class of a request of `size` bytes, by arithmetic.
#[cfg_attr(not(small_code), inline(always))]
#[cfg_attr(small_code, inline)]
const fn compute_class(size: usize) -> usize {
    if size <= 64 {
        let size = if size < MIN_SIZE { MIN_SIZE } else { size };
        (size - 1) >> 3
    } else {
        let s = size - 1;
        let octave = usize::BITS - 1 - s.leading_zeros(); // floor(log2(size - 1)), at least 6
        let step = (s >> (octave - 3)) - 8; // which eighth of the octave
        8 + ((octave as usize - 6) << 3) + step
    }
}

/// The object size of class `class`.
#[cfg_attr(not(small_code), inline(always))]
#[cfg_attr(small_code, inline)]
pub(crate) const fn class_size(class: usize) -> usize {
    if class < 8 {
        (class + 1) << 3
    } else {
        let octave = 6 + (class - 8) / 8;
        let eighth = 8 + (class - 8) % 8;
        (eighth + 1) << (octave - 3)
    }
}

/// The smallest class whose objects hold `size` bytes at an alignment of `align`, if one of at most
/// `max_size` bytes does and the alignment is at most `max_align`: objects sit at multiples of the
/// class size from a page start aligned to `max_align` (the block size), so a class serves `align`
/// when its size is a multiple of it and the page start is aligned to it too.
///
/// `max_size` is a class size ([`class_ceiling`]), so that a request of up to that size at an
/// alignment of 8 or less always has a class.
#[cfg_attr(not(small_code), inline(always))]
#[cfg_attr(small_code, inline)]
pub(crate) fn class_for(
    size: usize,
    align: usize,
    max_size: usize,
    max_align: usize,
) -> Option<usize> {
    if size > max_size {
        return None;
    }
    // The common request takes its class at once where speed counts; builds for size share the
    // path below, which comes to the same class.
    #[cfg(not(opt_size))]
    if align <= 8 {
        return Some(class_of(size.max(1)));
    }
    if align > max_align {
        // Past the block size a page's start may not be aligned enough: a run of its own.
        return None;
    }
    // Round the size up to the alignment first (which changes no class at alignments up to 8, as
    // every class size is a multiple of 8); the class of that is a multiple of the alignment
    // unless it is one of the in-between classes of its octave, and a power of two is a class.
    let rounded = (size.max(1) + align - 1) & !(align - 1);
    let mut class = class_of(rounded);
    while class_size(class) & (align - 1) != 0 {
        class += 1;
    }
    (class_size(class) <= max_size).then_some(class)
}

/// The size of the smallest class that holds `size` bytes (`1 <= size <= MAX_CLASS_SIZE`).
pub(crate) const fn class_ceiling(size: usize) -> usize {
    class_size(compute_class(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_the_smallest_class_that_holds_it() {
        for size in 1..=TABLE_LIMIT {
            assert_eq!(
                class_of(size),
                compute_class(size),
                "table entry for {size}"
            );
        }
        let limit = if cfg!(miri) { 4096 } else { MAX_CLASS_SIZE };
        let mut class = class_of(1);
        for size in 1..=limit {
            let c = class_of(size);
            assert!(class_size(c) >= size, "class {c} too small for {size}");
            assert!(
                c == 0 || class_size(c - 1) < size.max(MIN_SIZE),
                "{size} not in smallest class"
            );
            assert!(c == class || c == class + 1, "classes skip at {size}");
            class = c;
            if size > 64 {
                let waste = class_size(c) - size;
                assert!(
                    waste * 8 < size,
                    "more than 12.5% waste at {size}: {}",
                    class_size(c)
                );
            }
        }
        assert_eq!(class_of(MAX_CLASS_SIZE), CLASSES - 1);
        assert_eq!(class_size(CLASSES - 1), MAX_CLASS_SIZE);
    }

    #[test]
    fn aligned_requests_get_classes_that_are_multiples_of_the_alignment() {
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1, 7, 24, 65, 100, 1000, 5000] {
                let class = class_for(size, align, MAX_CLASS_SIZE, 4096).unwrap();
                assert!(class_size(class) >= size);
                assert_eq!(class_size(class) % align, 0, "size {size} align {align}");
            }
        }
        assert_eq!(class_for(5000, 8, 4096, 4096), None);
        assert_eq!(class_for(4000, 8192, 4096, 4096), None);
        // An alignment past the block size never comes from a page, whatever the size.
        assert_eq!(class_for(1, 4096, 8192, 1024), None);
        assert_eq!(class_for(8192, 8192, 32768, 4096), None);
        assert!(class_for(8192, 4096, 32768, 4096).is_some());
        assert_eq!(class_ceiling(1000), 1024);
        assert_eq!(class_ceiling(1025), 1152);
        assert_eq!(class_ceiling(32 << 10), 32 << 10);
    }
}
