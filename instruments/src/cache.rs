//! The dump on disk, once a trading day: `<dir>/instruments-YYYY-MM-DD.csv`.
//!
//! A download is checked (it must parse) before it replaces anything, and it is written
//! atomically (a temporary file, synced, renamed over, the directory synced): a crash or a
//! failed download never leaves a half file where a good one was. When today's download
//! fails, the last good day's file is used and [`Refresh::KeptOld`] says so.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use time::Date;

use crate::dump::{DumpError, parse_date};
use crate::master::InstrumentMaster;

/// Where the day's dumps are kept.
#[derive(Clone, Debug)]
pub struct DumpCache {
    dir: PathBuf,
}

/// What [`DumpCache::refresh`] did.
#[derive(Debug)]
pub enum Refresh {
    /// Today's file was already there: nothing was downloaded.
    Fresh { path: PathBuf },
    /// Downloaded and stored as today's file.
    Fetched { path: PathBuf, instruments: usize },
    /// The download failed (or did not parse): the last good file, from `date`, is used.
    KeptOld {
        path: PathBuf,
        date: Date,
        error: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("instrument cache {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Corrupt { path: PathBuf, source: DumpError },
    #[error(
        "no instrument dump in {dir} and the download failed: {error}. Run `kestrel instruments sync` once the broker answers"
    )]
    Nothing { dir: PathBuf, error: String },
}

const PREFIX: &str = "instruments-";
const SUFFIX: &str = ".csv";

impl DumpCache {
    pub fn new(dir: impl Into<PathBuf>) -> DumpCache {
        DumpCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `date`'s dump.
    pub fn path(&self, date: Date) -> PathBuf {
        self.dir.join(format!("{PREFIX}{date}{SUFFIX}"))
    }

    fn io(&self, path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
        let path = path.to_path_buf();
        move |source| CacheError::Io { path, source }
    }

    /// The newest stored dump on or before `today`, with its date.
    pub fn latest(&self, today: Date) -> Result<Option<(Date, PathBuf)>, CacheError> {
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            r => r.map_err(self.io(&self.dir))?,
        };
        let mut best = None;
        for entry in entries {
            let entry = entry.map_err(self.io(&self.dir))?;
            let name = entry.file_name();
            let Some(date) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX)?.strip_suffix(SUFFIX))
                .and_then(parse_date)
            else {
                continue;
            };
            if date <= today && best.as_ref().is_none_or(|(d, _)| date > *d) {
                best = Some((date, entry.path()));
            }
        }
        Ok(best)
    }

    /// Stores `text` as `date`'s dump if it parses; returns how many instruments it lists.
    pub fn store(&self, date: Date, text: &str) -> Result<(PathBuf, usize), CacheError> {
        let path = self.path(date);
        let master = InstrumentMaster::from_csv(text).map_err(|source| CacheError::Corrupt {
            path: path.clone(),
            source,
        })?;
        fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let tmp = self.dir.join(format!(".{PREFIX}{date}{SUFFIX}.tmp"));
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(self.io(&path))?;
        Ok((path, master.len()))
    }

    /// Reads and parses a stored dump.
    pub fn load(&self, path: &Path) -> Result<InstrumentMaster, CacheError> {
        let text = fs::read_to_string(path).map_err(self.io(path))?;
        InstrumentMaster::from_csv(&text).map_err(|source| CacheError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Today's dump: already stored, or fetched with `fetch` (the broker's `GET
    /// /instruments`) and stored; if that fails, the newest earlier one, saying so.
    pub fn refresh<E: std::fmt::Display>(
        &self,
        today: Date,
        fetch: impl FnOnce() -> Result<String, E>,
    ) -> Result<Refresh, CacheError> {
        let path = self.path(today);
        if path.exists() {
            return Ok(Refresh::Fresh { path });
        }
        let error = match fetch() {
            Ok(text) => match self.store(today, &text) {
                Ok((path, instruments)) => return Ok(Refresh::Fetched { path, instruments }),
                Err(e) => format!("the download did not parse: {e}"),
            },
            Err(e) => e.to_string(),
        };
        match self.latest(today)? {
            Some((date, path)) => Ok(Refresh::KeptOld { path, date, error }),
            None => Err(CacheError::Nothing {
                dir: self.dir.clone(),
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = include_str!("../../../shared/testdata/kite/instruments_all.csv");

    fn date(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    #[test]
    fn a_day_is_downloaded_once_then_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DumpCache::new(dir.path().join("instruments"));
        let today = date("2026-12-03");
        let r = cache
            .refresh(today, || Ok::<_, String>(REAL.to_string()))
            .unwrap();
        let Refresh::Fetched { path, instruments } = r else {
            panic!("{r:?}")
        };
        assert_eq!(instruments, REAL.lines().count() - 1);
        assert_eq!(cache.load(&path).unwrap().len(), instruments);
        let again = cache
            .refresh(today, || -> Result<String, String> {
                panic!("downloaded twice")
            })
            .unwrap();
        assert!(matches!(again, Refresh::Fresh { .. }), "{again:?}");
        // No temporary file is left beside it.
        let names: Vec<_> = fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_failed_or_corrupt_download_keeps_yesterdays_file_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DumpCache::new(dir.path());
        let yesterday = date("2026-12-02");
        cache.store(yesterday, REAL).unwrap();
        let today = date("2026-12-03");
        let r = cache.refresh(today, || Err("503 from the broker")).unwrap();
        match &r {
            Refresh::KeptOld { date, error, path } => {
                assert_eq!(*date, yesterday);
                assert!(error.contains("503"), "{error}");
                assert_eq!(path, &cache.path(yesterday));
            }
            other => panic!("{other:?}"),
        }
        let truncated = &REAL[..REAL.len() / 2];
        let r = cache
            .refresh(today, || Ok::<_, String>(truncated.to_string()))
            .unwrap();
        match &r {
            Refresh::KeptOld { error, .. } => assert!(error.contains("did not parse"), "{error}"),
            other => panic!("{other:?}"),
        }
        assert!(
            !cache.path(today).exists(),
            "a corrupt download replaced nothing"
        );
        // A day after a dump from the future is never "latest".
        assert_eq!(cache.latest(date("2026-12-01")).unwrap(), None);
    }

    /// A stored file damaged after it was written (by hand, a full disk) is refused when
    /// loaded, naming the file, the line and the column.
    #[test]
    fn a_corrupt_stored_dump_names_its_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DumpCache::new(dir.path());
        let day = date("2026-12-03");
        let (path, _) = cache.store(day, REAL).unwrap();
        let mut lines: Vec<String> = REAL.lines().map(str::to_string).collect();
        let mut cells: Vec<String> = lines[2].split(',').map(str::to_string).collect();
        cells[0] = "12a".into();
        lines[2] = cells.join(",");
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let err = cache.load(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("line 3, column instrument_token"), "{err}");
    }

    #[test]
    fn nothing_stored_and_no_download_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DumpCache::new(dir.path().join("none"));
        let err = cache
            .refresh(date("2026-12-03"), || Err("timed out"))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("timed out") && text.contains("kestrel instruments sync"),
            "{text}"
        );
    }
}
