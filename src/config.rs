//! Run-time settings of the arena engine, after mimalloc's options, as a `const` struct with presets.

/// When a freshly reserved arena is committed as a whole (mimalloc's `arena_eager_commit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EagerCommit {
    /// Commit blocks only when they are handed out.
    Never,
    /// Commit the whole arena when it is reserved.
    Always,
    /// Commit eagerly only if the backend overcommits (committing costs nothing until touched).
    IfOvercommit,
}

/// Settings of the arena engine. Every size is in bytes, every delay in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Size of one arena block: the unit arenas hand out, commit and purge, and so the granularity
    /// of large allocations (the heap rounds objects of more than eight blocks up to whole blocks,
    /// and cuts pages of at least four blocks for smaller ones). A power of two, at least 64. Every
    /// arena starts on a multiple of it. At most 1 MiB.
    pub block_size: usize,
    /// Size of an arena reserved on demand when no arena has room (0: never reserve, go to the
    /// backend directly). Divided by 4 on backends without virtual reserve, and doubled for every 8
    /// arenas that exist already. Over a backend that grows in place (a break pointer) it is the
    /// size an arena may grow to, a little at a time, as the program asks.
    pub arena_reserve: usize,
    /// Delay before freed blocks are purged: below 0 never, 0 at once. Multiplied by
    /// [`arena_purge_mult`](Self::arena_purge_mult).
    pub purge_delay_ms: i64,
    /// Multiplier of [`purge_delay_ms`](Self::purge_delay_ms) for arena blocks.
    pub arena_purge_mult: i64,
    /// Whether reserved arenas are committed up front.
    pub eager_commit: EagerCommit,
    /// Never allocate from the backend directly when the arenas are full: fail instead.
    pub limit_os_alloc: bool,
    /// Objects of up to this many bytes (rounded up to a size class) come from pages of their size
    /// class; larger ones are runs of whole blocks. Small heaps want it low (each class in use
    /// holds a page); large ones high (a block run wastes up to a block). Capped at eight blocks
    /// and at 1 MiB; 0 means no pages at all.
    pub small_limit: usize,
    /// Bytes a page aims at. Every page holds at least four objects (two of a block or more) and
    /// two blocks, and a class's first page is no larger; once a class needs a second page, its
    /// pages hold 32 objects up to this size, so that a program cycling through objects of a
    /// medium class makes a new page every 32 allocations instead of every four. Larger pages are
    /// faster; smaller ones waste less in a small heap, where every class in use holds one.
    pub page_target: usize,
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

impl Config {
    /// For wasm32 modules: 4 KiB blocks, arenas of up to 4 MiB that `WasmGrow` grows as the
    /// program asks (linear memory cannot be reserved without being grown, so it grows by what is
    /// needed, 64 KiB pages at a time), no purging (linear memory never shrinks).
    pub const WASM: Config = Config {
        block_size: 4 * KIB,
        arena_reserve: 4 * MIB,
        purge_delay_ms: -1,
        arena_purge_mult: 10,
        eager_commit: EagerCommit::Never,
        limit_os_alloc: false,
        small_limit: 32 * KIB,
        page_target: 256 * KIB,
    };

    /// For firmware with tens or hundreds of KiB of RAM: 256-byte blocks, arenas of up to 64 KiB
    /// (grown over `Sbrk`'s break as the program asks; 16 KiB at a time from a backend that neither
    /// grows in place nor reserves virtually), no purging.
    pub const EMBEDDED: Config = Config {
        block_size: 256,
        arena_reserve: 64 * KIB,
        purge_delay_ms: -1,
        arena_purge_mult: 10,
        eager_commit: EagerCommit::Never,
        limit_os_alloc: false,
        small_limit: 512,
        page_target: 0,
    };

    /// For hosts with virtual memory: 4 KiB blocks (the usual OS page), 64 MiB arenas reserved
    /// uncommitted, purged 100 ms after they are freed (10 ms × 10).
    pub const HOST: Config = Config {
        block_size: 4 * KIB,
        arena_reserve: 64 * MIB,
        purge_delay_ms: 10,
        arena_purge_mult: 10,
        eager_commit: EagerCommit::IfOvercommit,
        limit_os_alloc: false,
        small_limit: 32 * KIB,
        page_target: 512 * KIB,
    };

    /// The same settings with another block size.
    pub const fn with_block_size(self, block_size: usize) -> Config {
        Config { block_size, ..self }
    }

    /// The same settings with another arena reservation size.
    pub const fn with_arena_reserve(self, arena_reserve: usize) -> Config {
        Config {
            arena_reserve,
            ..self
        }
    }

    /// The same settings with another `small_limit`.
    pub const fn with_small_limit(self, small_limit: usize) -> Config {
        Config {
            small_limit,
            ..self
        }
    }

    /// The same settings with another `page_target`.
    pub const fn with_page_target(self, page_target: usize) -> Config {
        Config {
            page_target,
            ..self
        }
    }

    /// The same settings with `limit_os_alloc` set as given.
    pub const fn with_limit_os_alloc(self, limit_os_alloc: bool) -> Config {
        Config {
            limit_os_alloc,
            ..self
        }
    }

    /// Panics (at compile time, in a `static`) if a setting is out of range.
    pub const fn validate(&self) {
        assert!(
            self.block_size.is_power_of_two() && self.block_size >= 64 && self.block_size <= MIB,
            "Config::block_size must be a power of two from 64 bytes to 1 MiB"
        );
    }

    /// The purge delay in milliseconds: below 0 never, 0 at once.
    pub const fn purge_delay(&self) -> i64 {
        self.purge_delay_ms.saturating_mul(self.arena_purge_mult)
    }
}
