//! The ticker server over real loopback sockets, driven by a plain blocking client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kestrel_exchange_sim::{TickSource, TickerConfig, TickerServer};
use kestrel_feed::ws::{
    CloseCode, Opcode, client_request, encode_frame, parse_close_payload, parse_frame,
    validate_response,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn connect(server: &TickerServer, query: &str) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = client_request(&server.local_addr().to_string(), &format!("/?{query}"), KEY);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    }
    (s, buf)
}

fn open(server: &TickerServer) -> (TcpStream, Vec<u8>) {
    let (s, buf) = connect(server, "api_key=k&access_token=t");
    let head = validate_response(&buf, KEY).unwrap().unwrap();
    (s, buf[head..].to_vec())
}

fn send_masked(s: &mut TcpStream, opcode: Opcode, payload: &[u8]) {
    let mut out = vec![0u8; payload.len() + 14];
    let n = encode_frame(opcode, payload, Some([1, 2, 3, 4]), &mut out).unwrap();
    s.write_all(&out[..n]).unwrap();
}

/// Reads until `pending` holds one whole frame; returns (opcode, payload).
fn next_frame(s: &mut TcpStream, pending: &mut Vec<u8>) -> (Opcode, Vec<u8>) {
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        if let Some(f) = parse_frame(pending).unwrap() {
            let out = (f.opcode, f.payload.to_vec());
            pending.drain(..f.len);
            return out;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed the connection");
        pending.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn refuses_bad_credentials_with_403_and_a_token_exception_body() {
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let (mut s, mut buf) = connect(&server, "api_key=k&access_token=wrong");
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(text.contains("TokenException"), "{text}");
    assert_eq!(server.handle().stats().rejected, 1);
    assert_eq!(server.handle().stats().connections, 0);
}

#[test]
fn an_unmasked_client_frame_gets_a_protocol_close_1002() {
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let (mut s, mut pending) = open(&server);
    // A text frame without a mask, as only a server may send.
    let mut out = [0u8; 64];
    let n = encode_frame(
        Opcode::Text,
        b"{\"a\":\"subscribe\",\"v\":[408065]}",
        None,
        &mut out,
    )
    .unwrap();
    s.write_all(&out[..n]).unwrap();
    let (op, payload) = next_frame(&mut s, &mut pending);
    assert_eq!(op, Opcode::Close);
    let close = parse_close_payload(&payload).unwrap().unwrap();
    assert_eq!(close.code, CloseCode::PROTOCOL_ERROR);
    assert!(
        server
            .handle()
            .wait_for(Duration::from_secs(5), |s| s.protocol_closes == 1)
    );
    assert_eq!(server.handle().stats().subscribe_messages, 0);
}

#[test]
fn answers_ping_with_pong_and_echoes_close() {
    let server = TickerServer::start(TickerConfig::new("k", "t")).unwrap();
    let (mut s, mut pending) = open(&server);
    send_masked(&mut s, Opcode::Ping, b"hi");
    assert_eq!(
        next_frame(&mut s, &mut pending),
        (Opcode::Pong, b"hi".to_vec())
    );
    send_masked(&mut s, Opcode::Close, &1000u16.to_be_bytes());
    let (op, payload) = next_frame(&mut s, &mut pending);
    assert_eq!(op, Opcode::Close);
    assert_eq!(payload, 1000u16.to_be_bytes());
}

/// The first `bytes` bytes of the stream a quote-mode subscriber gets from `seed`.
fn stream_prefix(seed: u64, bytes: usize) -> Vec<u8> {
    let mut cfg = TickerConfig::new("k", "t");
    cfg.source = TickSource::Synthetic {
        seed,
        ticks_per_sec: None,
        start_ts: 1_700_000_000_000_000_000,
    };
    let server = TickerServer::start(cfg).unwrap();
    let (mut s, mut got) = open(&server);
    send_masked(
        &mut s,
        Opcode::Text,
        br#"{"a":"subscribe","v":[738561,2953217,341249,408065,1270529]}"#,
    );
    let mut chunk = vec![0u8; 1 << 16];
    while got.len() < bytes {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    got.truncate(bytes);
    got
}

#[test]
fn the_same_seed_gives_a_byte_identical_stream() {
    let a = stream_prefix(42, 200_000);
    let b = stream_prefix(42, 200_000);
    // Not 43: `Rng::new` sets the low bit of the mixed seed, so 42 and 43 collide.
    let c = stream_prefix(1_042, 200_000);
    let first = a.iter().zip(&b).position(|(x, y)| x != y);
    assert!(
        a == b,
        "same seed, different bytes from {first:?}: {:?} vs {:?}",
        &a[first.unwrap_or(0)..][..16],
        &b[first.unwrap_or(0)..][..16]
    );
    assert!(a != c, "different seeds, same bytes");
    // Binary frames of quote packets: the first frame's payload has 44-byte packets.
    let f = parse_frame(&a).unwrap().unwrap();
    assert_eq!(f.opcode, Opcode::Binary);
    assert_eq!(&f.payload[2..4], &44u16.to_be_bytes());
}

#[test]
fn an_invalidated_token_loses_its_connection_and_cannot_reconnect() {
    use std::sync::{Arc, Mutex};

    use kestrel_engine::InstrumentTable;
    use kestrel_exchange_sim::rest::{KiteRest, RestConfig};
    use kestrel_exchange_sim::{MatchingConfig, PaperVenue};

    let venue = Arc::new(Mutex::new(PaperVenue::new(
        InstrumentTable::nse_default(),
        MatchingConfig::default(),
    )));
    let rest = KiteRest::new(
        RestConfig {
            api_key: "k".into(),
            access_token: "t".into(),
            ..RestConfig::default()
        },
        venue,
    );
    let sessions = rest.sessions();
    let server = TickerServer::start(TickerConfig {
        sessions: Some(sessions.clone()),
        ..TickerConfig::new("k", "t")
    })
    .unwrap();
    let (mut s, _) = open(&server);
    assert!(sessions.revoke("t"));
    // Heartbeats may come first; then the server closes (bounded by the read timeout).
    let mut chunk = [0u8; 4096];
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(
                std::time::Instant::now() < end,
                "the connection stayed open"
            ),
        }
    }
    let (mut s, mut buf) = connect(&server, "api_key=k&access_token=t");
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
}
