//! The stamping front of the stand-in's REST API: a TCP relay in front of the simulator's
//! Kite REST server that notes, for every `POST /orders/...` request, when its first bytes
//! reached the socket.
//!
//! The stamp is the kernel's receive timestamp (`SO_TIMESTAMPNS`, `CLOCK_REALTIME`, taken
//! when the first segment of the read was queued on the socket), so the relay thread's own
//! wake-up delay is not in the measurement. A read that carries no timestamp falls back to
//! `CLOCK_REALTIME` right after `recvmsg` returns, and is counted.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use kestrel_engine::Side;

/// `CLOCK_REALTIME` in nanoseconds: the clock of the kernel's receive timestamps.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One order placement as it reached the stand-in.
#[derive(Clone, Debug)]
pub struct OrderSeen {
    /// `CLOCK_REALTIME` ns when the request's first bytes were readable.
    pub at_ns: u64,
    /// False when the read carried no kernel timestamp (the stamp is the fallback).
    pub kernel_stamp: bool,
    pub symbol: String,
    pub side: Option<Side>,
}

/// The running relay; stops its threads on drop.
#[derive(Debug)]
pub struct Front {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    orders: Arc<Mutex<Vec<OrderSeen>>>,
}

impl Front {
    /// Listens on a free loopback port and relays every connection to `inner`.
    pub fn start(inner: SocketAddr) -> Result<Front> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the REST front")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let orders = Arc::new(Mutex::new(Vec::new()));
        let (s, o) = (stop.clone(), orders.clone());
        let accept = std::thread::Builder::new()
            .name("front-accept".into())
            .spawn(move || accept_loop(listener, inner, &s, &o))?;
        Ok(Front {
            addr,
            stop,
            accept: Some(accept),
            orders,
        })
    }

    /// Every order placement seen so far, in arrival order.
    pub fn orders(&self) -> Vec<OrderSeen> {
        self.orders.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    inner: SocketAddr,
    stop: &Arc<AtomicBool>,
    orders: &Arc<Mutex<Vec<OrderSeen>>>,
) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let (orders, stop) = (orders.clone(), stop.clone());
                // Relay threads end within one read timeout of `stop`.
                let handle =
                    std::thread::Builder::new()
                        .name("front-conn".into())
                        .spawn(move || {
                            let _ = relay(client, inner, &stop, &orders);
                        });
                if let Ok(h) = handle {
                    conns.push(h);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

/// Relays one client connection: responses back on a second thread, requests forward on
/// this one, each request's stamp noted.
fn relay(
    client: TcpStream,
    inner: SocketAddr,
    stop: &AtomicBool,
    orders: &Mutex<Vec<OrderSeen>>,
) -> Result<()> {
    client.set_nonblocking(false)?;
    client.set_nodelay(true)?;
    enable_timestamps(&client)?;
    client.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut upstream = TcpStream::connect(inner).context("connecting to the simulator")?;
    upstream.set_nodelay(true)?;
    upstream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut back_in = upstream.try_clone()?;
    let mut back_out = client.try_clone()?;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                match back_in.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if back_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if timed_out(&e) => {}
                    Err(_) => break,
                }
            }
            let _ = back_out.shutdown(std::net::Shutdown::Both);
        });
        let mut scanner = RequestScanner::default();
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match recv_stamped(&client, &mut buf) {
                Ok((0, _)) => break,
                Ok((n, stamp)) => {
                    let (at, kernel) = match stamp {
                        Some(t) => (t, true),
                        None => (realtime_ns(), false),
                    };
                    scanner.push(&buf[..n], at, kernel, |seen| {
                        if let Ok(mut o) = orders.lock() {
                            o.push(seen);
                        }
                    });
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if timed_out(&e) => {}
                Err(_) => break,
            }
        }
        let _ = upstream.shutdown(std::net::Shutdown::Both);
    });
    Ok(())
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

fn enable_timestamps(s: &TcpStream) -> Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket fd, and a pointer to a c_int with its size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("setting SO_TIMESTAMPNS");
    }
    Ok(())
}

/// `recvmsg` into `buf`; the kernel's receive timestamp of the first byte read, if any.
fn recv_stamped(s: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s: aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (over `buf`) and `control`, all alive and writable for
    // the call; the sizes given are theirs.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR reads its control fields only.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: `c` is non-null and points inside `control`, as CMSG_FIRSTHDR/NXTHDR
        // guarantee.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS message carries one timespec; read unaligned.
            let ts: libc::timespec =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>()) };
            stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
        }
        // SAFETY: `msg` and `c` are as above.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    Ok((n as usize, stamp))
}

/// Splits a client's byte stream into HTTP/1.1 requests (`Content-Length` bodies, as every
/// client here sends) and reports the order placements with the stamp of the read that
/// brought their first byte.
#[derive(Debug, Default)]
pub struct RequestScanner {
    buf: Vec<u8>,
    /// Stamp of the current request's first byte.
    start: Option<(u64, bool)>,
    /// A malformed head was seen: nothing after it can be framed.
    broken: bool,
}

impl RequestScanner {
    pub fn push(
        &mut self,
        bytes: &[u8],
        at: u64,
        kernel: bool,
        mut on_order: impl FnMut(OrderSeen),
    ) {
        if self.broken {
            return;
        }
        if self.buf.is_empty() {
            self.start = Some((at, kernel));
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            let head_len = match request.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return,
                Err(e) => {
                    // Nothing after a malformed head can be framed: stop scanning this client
                    // (the bytes are still forwarded; the venue answers them).
                    eprintln!(
                        "front: a client sent a malformed request head ({e}); not scanning it further"
                    );
                    self.buf.clear();
                    self.broken = true;
                    return;
                }
            };
            let body_len = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .unwrap_or(0);
            let is_order = request.method == Some("POST")
                && request.path.is_some_and(|p| p.starts_with("/orders/"));
            let total = head_len + body_len;
            if self.buf.len() < total {
                return;
            }
            if is_order {
                let body = &self.buf[head_len..total];
                let field = |name: &str| {
                    form_urlencoded::parse(body)
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                };
                let (at_ns, kernel_stamp) = self.start.unwrap_or((at, kernel));
                on_order(OrderSeen {
                    at_ns,
                    kernel_stamp,
                    symbol: field("tradingsymbol").unwrap_or_default(),
                    side: match field("transaction_type").as_deref() {
                        Some("BUY") => Some(Side::Buy),
                        Some("SELL") => Some(Side::Sell),
                        _ => None,
                    },
                });
            }
            self.buf.drain(..total);
            // A following request already in this read starts now (HTTP/1.1 clients here
            // wait for each answer, so this is rare).
            self.start = (!self.buf.is_empty()).then_some((at, kernel));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_stamps_an_order_with_the_read_that_brought_its_first_byte() {
        let body = "tradingsymbol=INFY&transaction_type=SELL&quantity=1";
        let head = format!(
            "POST /orders/regular HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut s = RequestScanner::default();
        let mut seen = Vec::new();
        s.push(head.as_bytes(), 10, true, |o| seen.push(o));
        s.push(&body.as_bytes()[..10], 20, true, |o| seen.push(o));
        assert!(seen.is_empty(), "the body is not complete yet");
        let rest = format!("{}GET /orders HTTP/1.1\r\n\r\n", &body[10..]);
        s.push(rest.as_bytes(), 30, false, |o| seen.push(o));
        assert_eq!(seen.len(), 1, "one placement; the GET is not one");
        assert_eq!(seen[0].at_ns, 10);
        assert!(seen[0].kernel_stamp);
        assert_eq!(seen[0].symbol, "INFY");
        assert_eq!(seen[0].side, Some(Side::Sell));
        assert!(s.buf.is_empty());
    }

    #[test]
    fn scanner_stops_at_a_malformed_head() {
        let mut s = RequestScanner::default();
        let mut seen = Vec::new();
        s.push(
            b"POST /orders/regular HTTP/1.1\r\nno colon\r\n\r\n",
            1,
            false,
            |o| seen.push(o),
        );
        let order = "POST /orders/regular HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        s.push(order.as_bytes(), 2, false, |o| seen.push(o));
        assert!(seen.is_empty() && s.broken && s.buf.is_empty());
    }
}
