//! What the heap writes in an arena's block tags: for every block of a page, where the page starts
//! and how long it is; for the first block of a large object, how many blocks it has. Any other
//! block (a free one, or the inside of a large object) has tag 0, so a pointer into it is refused.

/// A decoded block tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    /// Not the start of anything the heap handed out.
    None,
    /// A block of a page: the page starts `back` blocks earlier and has `blocks` blocks.
    Page { back: usize, blocks: usize },
    /// The first block of a large object of `blocks` blocks.
    Large { blocks: usize },
}

const KIND_PAGE: u32 = 1;
const KIND_LARGE: u32 = 2;
/// Bits for a page's length and a block's distance from the page start.
const PAGE_BITS: u32 = 15;
/// The most blocks a page can have.
pub(crate) const MAX_PAGE_BLOCKS: usize = (1 << PAGE_BITS) - 1;
/// The most blocks a large object can have.
pub(crate) const MAX_LARGE_BLOCKS: usize = (1 << 30) - 1;

impl Tag {
    #[inline(always)]
    pub fn decode(tag: u32) -> Tag {
        match tag & 3 {
            KIND_PAGE => Tag::Page {
                back: ((tag >> 2) & MAX_PAGE_BLOCKS as u32) as usize,
                blocks: (tag >> (2 + PAGE_BITS)) as usize,
            },
            KIND_LARGE => Tag::Large {
                blocks: (tag >> 2) as usize,
            },
            _ => Tag::None,
        }
    }

    #[cfg_attr(not(small_code), inline(always))]
    #[cfg_attr(small_code, inline)]
    pub fn encode(self) -> u32 {
        match self {
            Tag::None => 0,
            Tag::Page { back, blocks } => {
                debug_assert!(back < blocks && blocks <= MAX_PAGE_BLOCKS);
                KIND_PAGE | (back as u32) << 2 | (blocks as u32) << (2 + PAGE_BITS)
            }
            Tag::Large { blocks } => {
                debug_assert!(blocks <= MAX_LARGE_BLOCKS);
                KIND_LARGE | (blocks as u32) << 2
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for tag in [
            Tag::None,
            Tag::Page { back: 0, blocks: 1 },
            Tag::Page {
                back: MAX_PAGE_BLOCKS - 1,
                blocks: MAX_PAGE_BLOCKS,
            },
            Tag::Large { blocks: 1 },
            Tag::Large {
                blocks: MAX_LARGE_BLOCKS,
            },
        ] {
            assert_eq!(Tag::decode(tag.encode()), tag);
        }
        assert_eq!(Tag::decode(0), Tag::None);
        assert_eq!(Tag::decode(3), Tag::None);
    }
}
