//! The arena engine on the host: a static registry over a 256 KiB static buffer hands out block
//! runs, one subsystem gets an exclusive arena of its own, a double free is caught, and the arena map
//! and counters show what the heap is doing.
//!
//! Run with `cargo run --example arena_map`.

use quarry_alloc::{ArenaId, Arenas, Config, FreeError, StaticBuffer};

/// 1 KiB blocks; arenas reserved 16 KiB at a time (a static buffer has no virtual reserve).
static ARENAS: Arenas<StaticBuffer<{ 256 * 1024 }>> =
    Arenas::new(StaticBuffer::new(), Config::EMBEDDED);

fn report(error: &FreeError) {
    println!("error hook: {error}");
}

fn main() {
    ARENAS.set_error_hook(Some(report));

    // A subsystem with memory of its own: an exclusive arena that only requests naming it can use.
    let audio = ARENAS
        .reserve(8 * 1024, true, true)
        .expect("room for the audio arena");
    let frames: Vec<_> = (0..3)
        .map(|_| {
            ARENAS
                .alloc(2 * 1024, 1024, true, audio)
                .expect("audio frame")
        })
        .collect();

    // Mixed requests from everyone else, some of them aligned beyond the block size.
    let mut held = Vec::new();
    for (i, size) in [700, 3000, 1024, 5000, 100, 9000, 2048, 64]
        .into_iter()
        .enumerate()
    {
        let align = if i % 3 == 0 { 4096 } else { 16 };
        let a = ARENAS
            .alloc(size, align, true, ArenaId::ANY)
            .expect("memory for a request");
        assert_eq!(a.ptr.as_ptr() as usize % align, 0);
        // SAFETY: the allocation is ours and committed; writing it proves it usable.
        unsafe { a.ptr.as_ptr().write_bytes(i as u8, a.size) };
        held.push(a);
    }
    // Free every other one, leaving holes the next requests can fill.
    for a in held.iter().step_by(2) {
        // SAFETY: not used after this.
        unsafe { ARENAS.free(a) }.expect("a valid free");
    }
    // A double free is refused, counted and reported; nothing changes.
    // SAFETY: refused without touching memory.
    let refused = unsafe { ARENAS.free(&held[0]) };
    assert!(refused.is_err());

    let mut map = String::new();
    ARENAS.write_map(&mut map).expect("writing to a String");
    print!("{map}");

    let stats = ARENAS.stats();
    println!(
        "{} arenas, {} KiB in arenas, {} blocks in use, {} refused frees, \
         {} bytes of static metadata",
        stats.arenas,
        stats.arena_bytes / 1024,
        stats.blocks_in_use,
        stats.errors(),
        stats.meta_bytes,
    );
    println!(
        "audio arena: {} frames, {} KiB",
        frames.len(),
        ARENAS.area(audio).map_or(0, |(_, size)| size / 1024)
    );
}
