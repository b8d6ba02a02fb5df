//! A counting global allocator, for the tests that prove a hot path allocates nothing.
//!
//! A test binary installs it and measures a closure:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: kestrel_engine::alloc_counter::CountingAllocator =
//!     kestrel_engine::alloc_counter::CountingAllocator;
//!
//! let counts = kestrel_engine::alloc_counter::count(|| hot_path());
//! assert_eq!(counts, AllocCounts::default());
//! ```
//!
//! Counting is per thread (const-initialised thread-locals), so other test threads running at
//! the same time do not disturb a measurement. Without the `#[global_allocator]` line `count`
//! sees nothing: each test file also checks that the counter does see an allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to the system allocator and counts, on the calling thread, while [`count`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

/// What a measured closure did on its own thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocCounts {
    /// `alloc`, `alloc_zeroed` and `realloc` calls.
    pub allocs: u64,
    /// `dealloc` and `realloc` calls.
    pub frees: u64,
}

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FREES: Cell<u64> = const { Cell::new(0) };
}

fn note(counter: &'static std::thread::LocalKey<Cell<u64>>) {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    if ON.try_with(Cell::get).unwrap_or(false) {
        let _ = counter.try_with(|c| c.set(c.get() + 1));
    }
}

/// Runs `f` and returns what it allocated and freed on this thread (requires the
/// [`CountingAllocator`] to be the global allocator of the binary).
pub fn count<R>(f: impl FnOnce() -> R) -> (R, AllocCounts) {
    ALLOCS.with(|c| c.set(0));
    FREES.with(|c| c.set(0));
    ON.with(|c| c.set(true));
    let out = f();
    ON.with(|c| c.set(false));
    (
        out,
        AllocCounts {
            allocs: ALLOCS.with(Cell::get),
            frees: FREES.with(Cell::get),
        },
    )
}

// SAFETY: every method forwards to the system allocator with the caller's arguments; the
// counting touches only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(&ALLOCS);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(&ALLOCS);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(&FREES);
        // SAFETY: as above; `ptr` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(&ALLOCS);
        note(&FREES);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
