//! The control socket's server: a private Unix socket, one request line per connection,
//! the handler called on the server's own thread.

use super::*;

/// The control socket's server thread. Stops (and removes its socket file) on [`stop`] or
/// drop.
///
/// [`stop`]: ControlServer::stop
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// (device, inode) of our socket file: removed at stop only if it is still ours.
    identity: (u64, u64),
    /// Holds the lock that says a kestrel serves `path`; released by `stop`.
    lock: Option<File>,
}

impl ControlServer {
    /// Listen on `path` and answer each request with `handler`, on a new thread.
    ///
    /// Fails, naming the path, if another kestrel is serving it, if `path` exists and is not
    /// a socket, or if the path is too long for a Unix socket. A socket file left by a
    /// process that died is replaced.
    pub fn start<H>(path: &Path, handler: H) -> Result<ControlServer>
    where
        H: FnMut(Request) -> Response + Send + 'static,
    {
        Self::start_with(path, handler, REQUEST_TIMEOUT)
    }

    pub(super) fn start_with<H>(
        path: &Path,
        handler: H,
        request_timeout: Duration,
    ) -> Result<ControlServer>
    where
        H: FnMut(Request) -> Response + Send + 'static,
    {
        let shown = path.display();
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "control socket path {shown} is too long ({} bytes; a Unix socket path holds at \
                 most {MAX_SOCKET_PATH}): use a shorter [storage] dir",
                path.as_os_str().len()
            );
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .with_context(|| format!("creating {} for the control socket", parent.display()))?;

        let lock = lock_for(path)?;
        refuse_unless_replaceable(path)?;
        let (listener, identity) = bind_private(path, &parent)?;
        listener
            .set_nonblocking(true)
            .with_context(|| format!("control socket {shown}"))?;

        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("kestrel-ctl".into())
            .spawn({
                let stop = stop.clone();
                move || accept_loop(listener, handler, &stop, request_timeout)
            })
            .context("starting the control socket thread")?;
        tracing::info!(path = %shown, "control socket listening");
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
            identity,
            lock: Some(lock),
        })
    }

    /// Stop accepting, finish or abandon the connection in hand (within about
    /// `READ_SLICE` plus the handler's own time), join the thread, remove the socket file
    /// and release the lock: another server may start on the path. Idempotent.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        if thread.join().is_err() {
            tracing::error!(path = %self.path.display(), "control socket thread panicked");
        }
        // Only our own socket: another process may have replaced it since (it would have had
        // to take the lock first, so this is belt and braces).
        if let Ok(meta) = fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
            && let Err(e) = fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "removing the control socket");
        }
        self.lock = None;
        tracing::info!(path = %self.path.display(), "control socket closed");
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Take the lock that says a kestrel serves `path`. The lock file stays after we exit (it
/// is empty); only the lock on it means anything, and the kernel drops that with the
/// process, however it ends.
fn lock_for(path: &Path) -> Result<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("opening the control lock {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => bail!(
            "another kestrel is already running with control socket {} (it holds {}); stop it \
             first, or give this one another [storage] dir",
            path.display(),
            lock_path.display()
        ),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
}

/// Nothing at `path`, or a socket nobody answers on (left by a process that died): fine, the
/// rename in [`bind_private`] replaces it. Anything else is an error naming the path.
fn refuse_unless_replaceable(path: &Path) -> Result<()> {
    let shown = path.display();
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("looking at {shown}")),
    };
    if !meta.file_type().is_socket() {
        bail!("{shown} exists and is not a socket; refusing to replace it (move it away)");
    }
    match UnixStream::connect(path) {
        // Closing at once: the other server sees an empty connection and moves on.
        Ok(_) => bail!(
            "another process is serving the control socket {shown} (it answers); stop it \
             first, or give this kestrel another [storage] dir"
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %shown, "replacing a stale control socket");
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("checking the existing socket {shown}")),
    }
}

/// Bind the socket so that it is never reachable by anyone else, not even for an instant:
/// bind inside a fresh directory only we can enter (0700), make the socket 0600 there, then
/// rename it into place (atomic; replaces a stale socket). A umask around `bind` would do the
/// same but is process-wide: it would change the modes of files other threads create
/// meanwhile. Returns the listener and the socket file's (device, inode).
fn bind_private(path: &Path, parent: &Path) -> Result<(UnixListener, (u64, u64))> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(".kctl{}-{n}", std::process::id()));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1_000 => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", dir.display()));
            }
        }
    };
    let tmp = dir.join("s");
    let bound = (|| {
        if tmp.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "control socket path {} is too long to bind (the temporary {} has {} bytes; at \
                 most {MAX_SOCKET_PATH}): use a shorter [storage] dir",
                path.display(),
                tmp.display(),
                tmp.as_os_str().len()
            );
        }
        let listener = UnixListener::bind(&tmp)
            .with_context(|| format!("binding the control socket at {}", tmp.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| {
            format!("moving the control socket into place at {}", path.display())
        })?;
        let meta = fs::symlink_metadata(path)
            .with_context(|| format!("control socket {}", path.display()))?;
        Ok((listener, (meta.dev(), meta.ino())))
    })();
    if bound.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    let _ = fs::remove_dir(&dir);
    bound
}

fn accept_loop<H>(listener: UnixListener, mut handler: H, stop: &AtomicBool, timeout: Duration)
where
    H: FnMut(Request) -> Response,
{
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => serve(stream, &mut handler, stop, timeout),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of file descriptors and the like: say so, keep serving.
                tracing::warn!(error = %e, "control socket accept failed");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// What reading one request line came to.
#[derive(Debug)]
enum Incoming {
    Line(String),
    /// Closed before sending a byte (a liveness probe): no reply.
    Nothing,
    /// Stop was requested meanwhile: no reply.
    Stopping,
    Bad(String),
}

fn serve<H>(mut stream: UnixStream, handler: &mut H, stop: &AtomicBool, timeout: Duration)
where
    H: FnMut(Request) -> Response,
{
    let response = match read_request(&mut stream, stop, timeout) {
        Incoming::Line(line) => match Request::parse(&line) {
            Ok(request) => call(handler, request),
            Err(e) => {
                tracing::warn!(error = %e, "control socket: bad request");
                Response::Refused(e)
            }
        },
        Incoming::Bad(e) => {
            tracing::warn!(error = %e, "control socket: bad request");
            Response::Refused(e)
        }
        Incoming::Nothing | Incoming::Stopping => return,
    };
    reply(&mut stream, &response);
    // Closing with unread input makes the client's next read fail (a reset) instead of
    // ending cleanly: read what is left of an oversized request, within bounds, first.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + READ_SLICE * 4;
    let mut sink = [0u8; 4096];
    let mut left: usize = 256 * 1024;
    while left > 0 && Instant::now() < deadline && !stop.load(Ordering::Acquire) {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => left = left.saturating_sub(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

fn reply(stream: &mut UnixStream, response: &Response) {
    let mut line = response.to_json().to_string();
    line.push('\n');
    let sent = stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .and_then(|()| stream.write_all(line.as_bytes()))
        .and_then(|()| stream.flush());
    if let Err(e) = sent {
        tracing::debug!(error = %e, "control socket: the client left before the reply");
    }
}

/// The handler, with a panic turned into an error reply: the control socket outlives a bug
/// in one command.
fn call<H>(handler: &mut H, request: Request) -> Response
where
    H: FnMut(Request) -> Response,
{
    if request == Request::Status {
        tracing::debug!(request = request.wire(), "control request");
    } else {
        tracing::info!(request = request.wire(), "control request");
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(request))) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!(request = request.wire(), "control handler panicked");
            Response::refused(format!(
                "internal error: {} failed (kestrel's log has the details)",
                request.wire()
            ))
        }
    }
}

fn read_request(stream: &mut UnixStream, stop: &AtomicBool, timeout: Duration) -> Incoming {
    // Accepted sockets do not inherit the listener's non-blocking mode on Linux, but say so.
    if let Err(e) = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(READ_SLICE)))
    {
        return Incoming::Bad(format!("control socket: {e}"));
    }
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    let line_end = loop {
        if stop.load(Ordering::Acquire) {
            return Incoming::Stopping;
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Incoming::Nothing,
            // Closed without a newline: what came is the request.
            Ok(0) => break buf.len(),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    break i;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Incoming::Bad(format!("reading the request: {e}")),
        }
        if buf.len() > MAX_REQUEST {
            return Incoming::Bad(format!(
                "request longer than {MAX_REQUEST} bytes; send one command word and a newline"
            ));
        }
        if Instant::now() >= deadline {
            return Incoming::Bad(format!(
                "no complete request line within {}; send one command word and a newline",
                humantime::format_duration(timeout)
            ));
        }
    };
    buf.truncate(line_end);
    if buf.len() > MAX_REQUEST {
        return Incoming::Bad(format!(
            "request longer than {MAX_REQUEST} bytes; send one command word and a newline"
        ));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    match String::from_utf8(buf) {
        Ok(line) => Incoming::Line(line),
        Err(_) => Incoming::Bad("the request is not UTF-8 text".into()),
    }
}
