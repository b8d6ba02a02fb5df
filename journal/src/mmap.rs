//! Opening a journal's memory map, and the promise that makes reading through it sound.
//!
//! A mapped file can be changed by anyone who can write the file, at any time, behind the
//! compiler's back; and touching a page past the end of a truncated file kills the process
//! with SIGBUS. So the map is opened by an `unsafe fn` whose contract is the journal protocol.
//! We use [`MmapRaw`], which hands out raw pointers only: this crate forms references to the
//! mapped bytes in just two places, the committed records (which never change again) and the
//! two live header fields (which are atomics).

use std::fs::File;

use memmap2::{MmapOptions, MmapRaw};

/// Maps the first `len` bytes of `file` for reading and writing, shared with every other
/// mapping of the file.
///
/// # Safety
///
/// The caller promises that, while the map lives, the file follows the journal protocol:
/// * it is never truncated below `len` bytes (kestrel never shrinks a journal);
/// * nothing but this mapping writes it (the writer holds the file's exclusive lock, and
///   other programs keep their hands off journal files);
/// * records below `committed` are never rewritten.
pub(crate) unsafe fn map_read_write(file: &File, len: u64) -> std::io::Result<MmapRaw> {
    debug_assert!(len > 0);
    MmapOptions::new().len(to_usize(len)?).map_raw(file)
}

/// Maps the first `len` bytes of `file` read-only.
///
/// # Safety
///
/// The caller promises that, while the map lives, the file follows the journal protocol: it is
/// never truncated below `len` bytes; only a kestrel writer modifies it, and that writer only
/// writes the live header fields (atomically) and record slots at or past `committed`.
pub(crate) unsafe fn map_read_only(file: &File, len: u64) -> std::io::Result<MmapRaw> {
    debug_assert!(len > 0);
    MmapOptions::new()
        .len(to_usize(len)?)
        .map_raw_read_only(file)
}

fn to_usize(len: u64) -> std::io::Result<usize> {
    usize::try_from(len).map_err(|_| std::io::Error::other("file too large to map"))
}
