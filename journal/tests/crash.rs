//! Crash safety, for real: a child process (this test binary, re-executed) appends as fast as
//! it can and is killed with SIGKILL; the journal must reopen with every committed record
//! intact and nothing after them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kestrel_engine::{InstrumentTable, JournalRecord, RecordTag};
use kestrel_journal::format::{file_len, records_offset_for};
use kestrel_journal::{JournalReader, JournalWriter, WriterOptions};

/// Set (to the journal's path) only in the child process.
const CHILD_PATH: &str = "KESTREL_JOURNAL_CRASH_CHILD_PATH";
const CHILD_TEST: &str = "child_appends_until_killed";
/// Small chunks, so that the child also grows the file (and may be killed while growing).
const CHUNK_BYTES: u64 = 1 << 20;
/// The child stops appending (and waits to be killed) after this many records of its own, so
/// that a slow parent cannot fill the disk.
const CHILD_CAP: u64 = 5_000_000;

/// Record `i`: timestamp `i`, 55 payload bytes derived from `i`, the marker tag.
fn pattern(i: u64) -> JournalRecord {
    let mut words = [0u64; 8];
    words[0] = i;
    for (k, w) in words.iter_mut().enumerate().skip(1) {
        *w = (i ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
            .rotate_left(k as u32 * 7);
    }
    let mut bytes: [u8; 64] = bytemuck::cast(words);
    bytes[63] = RecordTag::Marker.code();
    bytemuck::cast(bytes)
}

/// The child's body: continue (or start) the journal and append the pattern until killed.
#[test]
#[ignore = "the child process of killed_writer_leaves_every_committed_record_and_no_torn_one"]
fn child_appends_until_killed() {
    let Some(path) = std::env::var_os(CHILD_PATH) else {
        return;
    };
    let path = PathBuf::from(path);
    let options = WriterOptions {
        chunk_bytes: CHUNK_BYTES,
        max_file_bytes: None,
    };
    let mut writer = if path.exists() {
        JournalWriter::open_existing_with(&path, &options)
            .unwrap()
            .0
    } else {
        JournalWriter::create_with(&path, &InstrumentTable::nse_default(), 1, &options).unwrap()
    };
    let start = writer.committed();
    for i in start..start + CHILD_CAP {
        writer.append(&pattern(i)).unwrap();
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn spawn_child(path: &Path) -> Child {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
        .env(CHILD_PATH, path)
        .stdout(Stdio::null())
        .spawn()
        .expect("re-executing the test binary")
}

/// Waits until the child has committed at least `target` records; returns the count seen.
fn wait_for_commits(path: &Path, target: u64, child: &mut Child, deadline: Instant) -> u64 {
    let mut reader = None;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited early ({status}) before committing {target} records");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let seen = reader.as_ref().map_or(0, JournalReader::committed);
            panic!("the child committed only {seen} of {target} records within the deadline");
        }
        if reader.is_none() {
            // The file appears (empty, then with its header) while the child creates it.
            reader = JournalReader::open(path).ok();
        }
        if let Some(r) = &reader {
            let committed = r.committed();
            if committed >= target {
                return committed;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn assert_records_follow_the_pattern(reader: &JournalReader, committed: u64) {
    let records = reader.records();
    assert_eq!(
        records.len() as u64,
        committed,
        "the reader must show exactly the committed records"
    );
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            *record,
            pattern(i as u64),
            "record {i} of {committed} is not what was appended"
        );
    }
}

#[test]
fn killed_writer_leaves_every_committed_record_and_no_torn_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.kjnl");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut committed = 0;
    // Three kills at different moments; each child continues the journal its predecessor left.
    for round in 0..3u64 {
        let target = committed + 200_000 + round * 37_000;
        let mut child = spawn_child(&path);
        let seen = wait_for_commits(&path, target, &mut child, deadline);
        child.kill().unwrap(); // SIGKILL: no destructor, no flush, possibly mid-append
        child.wait().unwrap();

        let reader = JournalReader::open(&path).unwrap();
        committed = reader.committed();
        assert!(
            committed >= seen,
            "committed went back from {seen} to {committed}"
        );
        assert_records_follow_the_pattern(&reader, committed);
        drop(reader);

        let (writer, recovery) = JournalWriter::open_existing(&path).unwrap();
        assert_eq!(recovery.committed, committed);
        assert!(
            recovery.trimmed_bytes <= 64,
            "at most one partial record can follow the committed ones, found {} bytes",
            recovery.trimmed_bytes
        );
        drop(writer);
        let bytes = std::fs::read(&path).unwrap();
        let end = file_len(records_offset_for(5), committed) as usize;
        assert!(
            bytes[end..].iter().all(|&b| b == 0),
            "bytes remain after the last committed record"
        );
        let reader = JournalReader::open(&path).unwrap();
        assert_records_follow_the_pattern(&reader, committed);
    }
}
