//! The one error type of this crate.
//!
//! Every variant says what was wrong, where (the journal's path, or the CSV line and column)
//! and what to do about it. Nothing here is built on the append path: `append` returns an
//! error only when the journal must grow and growing fails.

use std::io;
use std::path::PathBuf;

use kestrel_engine::instrument::InstrumentError;

/// Everything that can go wrong creating, opening, writing, reading or converting a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An operating-system call on a journal file or directory failed.
    #[error("journal {path}: {action} failed: {source}")]
    Io {
        path: PathBuf,
        /// What we were doing, e.g. "mapping the file" or "growing the file".
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// Reading or writing CSV (a stream, not a journal file) failed.
    #[error("CSV stream: {0}; check the input or the destination (disk full, closed pipe)")]
    Stream(#[from] io::Error),

    #[error(
        "journal {path}: the disk is full ({needed} more bytes could not be allocated); every \
         record written so far is intact: free space on that filesystem, or journal to another \
         one"
    )]
    DiskFull { path: PathBuf, needed: u64 },

    #[error(
        "journal {path} already exists; a journal is never overwritten: choose a new name, \
         or continue it with JournalWriter::open_existing"
    )]
    AlreadyExists { path: PathBuf },

    #[error(
        "journal {path} is locked by another writer; stop that process first, or read the \
         journal with JournalReader, which needs no lock"
    )]
    Locked { path: PathBuf },

    #[error(
        "{path} is {len} bytes, shorter than the {header}-byte journal header: it is not a \
         kestrel journal, or it was cut off before its header was written"
    )]
    TooShort {
        path: PathBuf,
        len: u64,
        header: usize,
    },

    #[error(
        "{path} is not a kestrel journal (its first bytes are {found:02x?}, a journal starts \
         with \"KSTRLJNL\"); check the file name"
    )]
    NotAJournal { path: PathBuf, found: [u8; 8] },

    #[error(
        "journal {path} was written on a machine with the other byte order; export it to CSV \
         there (export_csv) and import the CSV here"
    )]
    OtherEndian { path: PathBuf },

    #[error(
        "journal {path} has a corrupt header: {problem}; the file was damaged, restore it from a \
         copy"
    )]
    CorruptHeader { path: PathBuf, problem: String },

    #[error(
        "journal {path} uses format version {found}, this build reads versions 1 to \
         {supported}; read it with a kestrel build of the matching version"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "journal {path} has {found}-byte records, this build uses {expected}-byte records; \
         read it with the kestrel build that wrote it"
    )]
    RecordSize {
        path: PathBuf,
        found: u32,
        expected: u32,
    },

    #[error(
        "journal {path} is truncated: its header says {committed} records ({needed} bytes) but \
         the file is {len} bytes; it was cut short (copied while being written, or the disk \
         filled): copy it again from the source"
    )]
    Truncated {
        path: PathBuf,
        committed: u64,
        needed: u64,
        len: u64,
    },

    #[error(
        "cannot create journal {path}: {count} instruments, but a journal holds at most {max}; \
         write the instruments to several journals, or trim the universe"
    )]
    TooManyInstruments {
        path: PathBuf,
        count: usize,
        max: usize,
    },

    #[error(
        "cannot create journal {path}: instrument '{symbol}' {problem}; fix the instrument \
         table (configuration)"
    )]
    InstrumentNotStorable {
        path: PathBuf,
        symbol: String,
        problem: String,
    },

    #[error(
        "journal {path} has a corrupt instrument table: {problem}; the file was damaged, \
         restore it from a copy"
    )]
    CorruptTable { path: PathBuf, problem: String },

    #[error(
        "journal {path} has an invalid instrument table: {source}; the file is damaged, \
         restore it from a copy"
    )]
    InstrumentTable {
        path: PathBuf,
        #[source]
        source: InstrumentError,
    },

    #[error("journal {path}: invalid writer options: {problem}")]
    InvalidOptions {
        path: PathBuf,
        problem: &'static str,
    },

    #[error(
        "journal {path} is full: it reached its limit of {capacity} records; roll to a new file \
         (RollingJournal does this) or raise max_file_bytes"
    )]
    Full { path: PathBuf, capacity: u64 },

    /// A CSV cell could not be used (or a header column is missing, unknown or repeated).
    #[error("line {line}, column {column}: {problem}")]
    Csv {
        /// 1-based; the header is line 1.
        line: u64,
        column: String,
        problem: String,
    },

    /// A CSV line as a whole could not be used (wrong number of fields, not UTF-8).
    #[error("line {line}: {problem}")]
    CsvLine { line: u64, problem: String },

    #[error(
        "record {index}: instrument #{instrument} is not in the instrument table ({known} \
         instruments); export with the journal's own table (JournalReader::instruments)"
    )]
    UnknownInstrument {
        index: usize,
        instrument: u16,
        known: usize,
    },
}

impl JournalError {
    /// A [`JournalError::Io`] about `path`.
    pub(crate) fn io(path: &std::path::Path, action: &'static str, source: io::Error) -> Self {
        JournalError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}
