//! `kestrel ctl`: the command line, the request and what it prints.

use super::*;

/// `kestrel ctl`: options before or after the command.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The control socket (default: kestrel.sock in the [storage] dir of --config).
    #[arg(long, global = true, conflicts_with = "config")]
    pub socket: Option<PathBuf>,
    /// The configuration whose [storage] dir holds the socket (default: the built-in one).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Print the reply as JSON, as it came.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up when kestrel has not answered within this long.
    #[arg(long, global = true, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum CtlCommand {
    /// Mode, trading state, session phase, orders, P&L, positions, latency.
    Status,
    /// Stop new entries (exits, cancels and flattening still pass); survives a restart.
    Pause {
        /// Pause only this strategy (its `[[strategies]]` id); the others trade on.
        strategy: Option<u8>,
    },
    /// Lift a pause, or a halt that waits for a person. Never lifts the kill switch.
    Resume {
        /// Lift the kill switch too.
        #[arg(long, conflicts_with = "strategy")]
        clear_kill: bool,
        /// Lift only this strategy's own pause.
        strategy: Option<u8>,
    },
    /// Kill switch: refuse every new entry until `resume --clear-kill`; survives a restart.
    /// Asks nothing.
    Kill,
    /// Cancel every open order and close every position at market, now. Asks nothing.
    Flatten,
    /// Hand the running session a new Kite access token, read from stdin (never the command
    /// line, which other users can see): it reconnects with it and, once the broker accepts
    /// it, trading resumes. Also stored in venue.credentials_file when there is one.
    Token,
}

impl CtlCommand {
    /// The request this command sends; `token` reads its token from stdin instead
    /// ([`token_request`]), so it has none here and is refused.
    pub fn request(self) -> Result<Request> {
        Ok(match self {
            CtlCommand::Status => Request::Status,
            CtlCommand::Pause { strategy: None } => Request::Pause,
            CtlCommand::Pause { strategy: Some(id) } => Request::PauseStrategy(id),
            CtlCommand::Resume {
                strategy: Some(id), ..
            } => Request::ResumeStrategy(id),
            CtlCommand::Resume {
                clear_kill: false, ..
            } => Request::Resume,
            CtlCommand::Resume {
                clear_kill: true, ..
            } => Request::ClearKill,
            CtlCommand::Kill => Request::Kill,
            CtlCommand::Flatten => Request::Flatten,
            CtlCommand::Token => {
                bail!(
                    "`kestrel ctl token` reads the token from stdin (`echo TOKEN | kestrel ctl token`)"
                )
            }
        })
    }
}

/// `kestrel ctl token`'s request: the token is the first line of `input`.
pub fn token_request(input: &mut dyn io::BufRead) -> Result<Request> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the access token from stdin")?;
    if line.trim().is_empty() {
        bail!(
            "no access token on stdin: run `echo TOKEN | kestrel ctl token` (or paste it and press Enter)"
        );
    }
    TokenText::new(&line)
        .map(Request::Token)
        .map_err(|e| anyhow!("{e}"))
}

/// `kestrel ctl ...`: find the socket, send, print the reply. An error reply is an `Err`
/// (the process exits non-zero).
pub fn run(args: &CtlArgs) -> Result<()> {
    let socket = match &args.socket {
        Some(p) => p.clone(),
        None => {
            // Only [storage] dir is needed: the instruments are not resolved.
            let config = Config::load_sections(args.config.as_deref())?;
            default_socket_path(&config.storage.dir)
        }
    };
    let mut out = io::stdout().lock();
    if args.command == CtlCommand::Token {
        let request = token_request(&mut io::stdin().lock())?;
        return execute_request(args, request, &socket, &mut out);
    }
    execute(args, &socket, &mut out)
}

/// Send `args.command` to the kestrel at `socket` and write what it said to `out`.
pub fn execute(args: &CtlArgs, socket: &Path, out: &mut dyn Write) -> Result<()> {
    execute_request(args, args.command.request()?, socket, out)
}

/// Send `request` to the kestrel at `socket` and write what it said to `out`.
pub fn execute_request(
    args: &CtlArgs,
    request: Request,
    socket: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let reply = send(socket, request, args.timeout)?;
    let field = |k: &str| reply.get(k).and_then(Value::as_str);
    let ok = reply.get("ok").and_then(Value::as_bool).ok_or_else(|| {
        anyhow!(
            "kestrel sent a reply without \"ok\" (socket {}): {reply}",
            socket.display()
        )
    })?;
    if args.json {
        writeln!(out, "{reply}")?;
    } else if ok {
        match (request, field("text"), field("message")) {
            (Request::Status, Some(text), _) => writeln!(out, "{text}")?,
            (_, _, Some(message)) => writeln!(out, "{}: {message}", request.wire())?,
            _ => writeln!(out, "{reply}")?,
        }
    }
    if !ok {
        bail!(
            "{}: {}",
            request.wire(),
            field("error").unwrap_or("kestrel refused (no reason given)")
        );
    }
    out.flush()?;
    Ok(())
}

/// One request, one reply (the JSON object), all within `timeout`.
pub fn send(socket: &Path, request: Request, timeout: Duration) -> Result<Value> {
    let shown = socket.display();
    let not_running = || anyhow!("kestrel is not running (no socket at {shown})");
    match fs::symlink_metadata(socket) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_running()),
        Ok(meta) if !meta.file_type().is_socket() => {
            bail!("{shown} is not a socket: give --socket the path of kestrel's control socket")
        }
        _ => {}
    }
    let mut stream = match connect(socket, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_running()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => bail!(
            "kestrel is not running (the socket at {shown} is left from a process that ended; \
             the next kestrel replaces it)"
        ),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => bail!(
            "kestrel did not accept the connection within {} (socket {shown})",
            humantime::format_duration(timeout)
        ),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => bail!(
            "cannot connect to {shown}: permission denied (the socket belongs to the user \
             running kestrel)"
        ),
        Err(e) => return Err(e).with_context(|| format!("connecting to {shown}")),
    };
    let deadline = Instant::now() + timeout;
    stream.set_write_timeout(Some(timeout))?;
    stream
        .write_all(format!("{}\n", request.line()).as_bytes())
        .with_context(|| format!("sending {} to {shown}", request.wire()))?;
    let _ = stream.shutdown(std::net::Shutdown::Write);

    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "kestrel did not answer {} within {} (socket {shown})",
                request.wire(),
                humantime::format_duration(timeout)
            );
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.contains(&b'\n') || buf.len() > MAX_REPLY {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(e).with_context(|| format!("reading the reply from {shown}"));
            }
        }
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    if line.is_empty() {
        bail!(
            "kestrel closed the connection without answering {} (socket {shown})",
            request.wire()
        );
    }
    let reply: Value = serde_json::from_slice(line)
        .with_context(|| format!("kestrel's reply on {shown} is not JSON"))?;
    if !reply.is_object() {
        bail!("kestrel's reply on {shown} is not a JSON object: {reply}");
    }
    Ok(reply)
}

/// `UnixStream::connect` can block when the server's backlog is full; give up after
/// `timeout` (the helper thread is abandoned, and ends with the process).
fn connect(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("kestrel-ctl-connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(&path));
        })?;
    rx.recv_timeout(timeout)
        .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut)))
}
