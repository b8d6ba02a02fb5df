//! Child processes that cannot outlive a test, and bounded waits for their output.

use std::io::{self, BufRead, BufReader, Read};
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Kills the child when the test ends, however it ends.
#[derive(Debug)]
pub struct Reaped(Option<Child>);

impl Reaped {
    pub fn new(child: Child) -> Reaped {
        Reaped(Some(child))
    }

    /// Waits for the child to exit and collects its output; kills it and panics naming
    /// `what` if `limit` passes first.
    pub fn output_within(mut self, limit: Duration, what: &str) -> Output {
        let child = self.0.take().expect("a child until dropped");
        output_within(child, limit, what)
    }
}

impl Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a child until dropped")
    }
}

impl DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("a child until dropped")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A child waited for on a thread of its own from the start, so that its pipes are drained
/// while the test does other things.
#[derive(Debug)]
pub struct Waited {
    pid: u32,
    what: String,
    rx: Receiver<io::Result<Output>>,
}

impl Waited {
    /// Starts waiting for `child` (named `what` in a failure).
    pub fn start(child: Child, what: &str) -> Waited {
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        Waited {
            pid,
            what: what.to_string(),
            rx,
        }
    }

    /// The child's output once it exits; kills it (SIGKILL) and panics if `limit` passes
    /// first.
    pub fn output_within(self, limit: Duration) -> Output {
        match self.rx.recv_timeout(limit) {
            Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what)),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-9", &self.pid.to_string()])
                    .status();
                panic!("{} did not finish within {limit:?}", self.what);
            }
        }
    }
}

/// `child`'s output once it exits; kills it and panics naming `what` if `limit` passes
/// first.
pub fn output_within(child: Child, limit: Duration, what: &str) -> Output {
    Waited::start(child, what).output_within(limit)
}

/// `cmd` spawned and run to completion within `limit` (see [`output_within`]).
pub fn run_within(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    output_within(child, limit, what)
}

/// The child's exit status once it exits, or `None` if `limit` passes first (the child is
/// left running).
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of `pipe` (a child's stdout, say) on a channel, read on a thread of their own
/// until the pipe closes.
pub fn lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Bytes a child wrote, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
