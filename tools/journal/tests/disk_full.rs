//! A full disk is an error, not a crash: the writer allocates each chunk's blocks before it
//! maps them, so running out of space surfaces as `JournalError::DiskFull` from `append`,
//! and every record written before it reads back intact.
//!
//! The test needs a filesystem that really fills up: a 4 MiB tmpfs mounted in a private
//! mount namespace (`unshare -rm`, which needs no privileges where user namespaces are
//! enabled). The parent test runs this test binary again inside it, running the ignored
//! `child_appends_until_the_disk_is_full`; a SIGBUS there (what a mapped file with holes
//! gives on a full disk) fails the parent. Where no namespace can be made, the parent says
//! so and passes without a verdict. The child then continues the full journal as a restart
//! after a crash mid-growth would (the file longer than its blocks): that too must be
//! `DiskFull`, not a SIGBUS.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kestrel_engine::{InstrumentTable, JournalRecord, Tick};
use kestrel_journal::{JournalError, JournalReader, JournalWriter, WriterOptions};

const DIR_VAR: &str = "KESTREL_DISK_FULL_DIR";
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn a_full_disk_is_an_error_not_a_sigbus() {
    let mount_point = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary");
    let script = r#"mount -t tmpfs -o size=4m tmpfs "$1" || exit 77; exec "$2" --exact child_appends_until_the_disk_is_full --ignored --nocapture"#;
    let spawned = Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(mount_point.path())
        .arg(&exe)
        .env(DIR_VAR, mount_point.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: cannot run unshare ({e}); no small filesystem to fill");
            return;
        }
    };
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for the child") {
            break s;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the disk-full child ran longer than {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("child output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if status.code() == Some(77) || (!status.success() && stderr.contains("unshare")) {
        eprintln!("skipped: no private tmpfs here ({}): {stderr}", status);
        return;
    }
    assert!(
        status.success(),
        "the writer died on a full disk ({status}; SIGBUS is signal 7)\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("disk full after"),
        "the child did not reach a full disk\nstdout:\n{stdout}"
    );
}

/// Runs only inside the parent's private tmpfs (it sets `KESTREL_DISK_FULL_DIR`).
#[test]
#[ignore = "run by a_full_disk_is_an_error_not_a_sigbus inside a private 4 MiB tmpfs"]
fn child_appends_until_the_disk_is_full() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let path = Path::new(&dir).join("full.kjnl");
    let table = InstrumentTable::nse_default();
    let options = WriterOptions {
        chunk_bytes: 1 << 20,
        max_file_bytes: None,
    };
    let mut w = JournalWriter::create_with(&path, &table, 1, &options).expect("create");
    let record = |i: u64| {
        JournalRecord::from_tick(&Tick::trade(
            kestrel_engine::InstrumentId((i % 5) as u16),
            i + 1,
            kestrel_engine::Price(100_000_000 + i as i64),
            1,
        ))
    };
    let mut written = 0u64;
    let err = loop {
        match w.append(&record(written)) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 1 << 20, "4 MiB held more than 64 MiB of records");
    };
    match &err {
        JournalError::DiskFull { path: p, needed } => {
            assert_eq!(p, &path);
            assert!(*needed > 0);
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("full.kjnl") && msg.contains("disk is full"),
        "{msg}"
    );
    // The writer still stands; what it wrote is intact.
    assert_eq!(w.committed(), written);
    drop(w);
    let r = JournalReader::open(&path).expect("reopen");
    assert_eq!(r.committed(), written);
    for (i, rec) in r.records().iter().enumerate() {
        assert_eq!(rec, &record(i as u64), "record {i}");
    }

    // A writer killed while growing the file can leave it longer than its blocks (a hole).
    // Continuing that journal on the full disk is DiskFull too, never a SIGBUS on a page of
    // the hole.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    let len = file.metadata().expect("metadata").len();
    file.set_len(len + (1 << 20))
        .expect("a hole needs no blocks");
    drop(file);
    match JournalWriter::open_existing_with(&path, &options) {
        Err(JournalError::DiskFull { path: p, .. }) => assert_eq!(p, path),
        Err(other) => panic!("continuing on a full disk: expected DiskFull, got {other:?}"),
        Ok((w, _)) => panic!("continued on a full disk with {} slots", w.capacity()),
    }
    assert_eq!(
        JournalReader::open(&path).expect("reopen").committed(),
        written
    );
    println!("disk full after {written} records: {msg}");
}
