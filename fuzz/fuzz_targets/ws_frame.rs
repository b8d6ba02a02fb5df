//! Any bytes as a stream of server frames (and, from the first byte, a payload limit):
//! parsing and reassembly must not panic, consumed lengths must stay in the buffer, and
//! the server-side parser (which unmasks in place) must agree on frame boundaries.
#![no_main]

use kestrel_feed::ws::{FrameConfig, Reassembler, parse_frame_mut, parse_frame_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(limit) * 64;
    let cfg = FrameConfig::client(max);
    let mut reasm = Reassembler::new(max);
    let mut at = 0;
    while at < rest.len() {
        let frame = match parse_frame_with(&rest[at..], &cfg) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        assert!(frame.len > 0 && at + frame.len <= rest.len());
        assert!(frame.payload.len() <= max);
        let len = frame.len;
        if reasm.push(frame).is_err() {
            reasm.reset();
        }
        at += len;
    }
    // The server role on a copy: masked frames are required and unmasked in place.
    let mut copy = rest.to_vec();
    let server = FrameConfig::server(max);
    let mut at = 0;
    while at < copy.len() {
        match parse_frame_mut(&mut copy[at..], &server) {
            Ok(Some(f)) => {
                assert!(f.len > 0 && at + f.len <= rest.len());
                at += f.len;
            }
            Ok(None) | Err(_) => break,
        }
    }
});
