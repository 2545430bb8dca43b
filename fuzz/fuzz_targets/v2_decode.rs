//! Fuzzes the KServe v2 request decoder, `protocol::v2::decode::decode_request`, on both its
//! paths: a plain JSON body, and the binary tensor extension (a JSON header of
//! `Inference-Header-Content-Length` bytes followed by raw tensor bytes). It must never panic,
//! whatever it accepts must be self-consistent, and on JSON bodies the one-pass reader of the
//! common request (`protocol::v2::request_scan`) must agree with the general decoder.
//!
//! Input format: the first byte picks the mode (its low two bits; the other bits are ignored),
//! the rest is the mode's payload:
//!
//! | mode | header length passed to the decoder | body |
//! |------|-------------------------------------|------|
//! | `0`  | none (JSON path)                    | the payload |
//! | `1`  | payload bytes 0..2, a little-endian `u16`, written in decimal (`"123"`) | payload bytes 2.. |
//! | `2`  | payload byte 0 = n, then n raw bytes used verbatim as the header value (any bytes: exercises the header parser) | what follows |
//! | `3`  | the offset of the first `0xFF` byte in the payload (the whole payload if none), in decimal | the payload without that `0xFF` byte |
//!
//! Mode 3 keeps the header length right while libFuzzer grows or shrinks the JSON header
//! (`0xFF` never occurs in UTF-8, so it cannot be part of a valid header). Mode 1 states it
//! exactly, as a client does. The seeds in `fuzz/corpus/v2_decode/` use all four modes;
//! `fuzz/gen_corpus.py` writes them.

#![no_main]

use protocol::v2::decode::decode_request;
#[path = "common/accepted.rs"]
mod accepted;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else { return };
    match mode & 0b11 {
        0 => {
            check(payload, None);
            // The one-pass reader of the common request returns nothing the general decoder
            // would not.
            protocol::v2::request_scan::check_agreement(payload);
        }
        1 => {
            let Some((len, body)) = payload.split_first_chunk::<2>() else { return };
            let header = u16::from_le_bytes(*len).to_string();
            check(body, Some(header.as_bytes()));
        }
        2 => {
            let Some((&n, rest)) = payload.split_first() else { return };
            let (header, body) = rest.split_at(usize::from(n).min(rest.len()));
            check(body, Some(header));
        }
        _ => match payload.iter().position(|&b| b == 0xFF) {
            None => check(payload, Some(payload.len().to_string().as_bytes())),
            Some(at) => {
                let mut body = Vec::with_capacity(payload.len() - 1);
                body.extend_from_slice(&payload[..at]);
                body.extend_from_slice(&payload[at + 1..]);
                check(&body, Some(at.to_string().as_bytes()));
            }
        },
    }
});

/// Decodes, and checks what an accepted request promises: unique input names, and each input's
/// data holds exactly the number of elements its shape says.
fn check(body: &[u8], header_length: Option<&[u8]>) {
    let Ok(request) = decode_request(body, header_length) else { return };
    accepted::check(&request);
}
