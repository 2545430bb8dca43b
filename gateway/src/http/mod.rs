//! HTTP: the accept loop, the public v2 endpoints, the admin endpoints, and the one place errors
//! become statuses. Handlers are plain async functions of `(Arc<App>, Request)`, so tests can
//! call them without a socket.

pub mod admin;
pub mod console;
pub mod error;
pub mod feedback;
#[cfg(test)]
mod handler_tests;
pub mod jobs;
pub mod metadata;
pub mod public;
pub mod registry;
pub mod server;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// The peer address of the connection a request came on, in the request's extensions (set by
/// `server`; absent in handler tests that build requests themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A JSON body with its status and content type; every JSON answer of both ports goes through here.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Decodes `%XX` escapes of a path segment (clients encode ids such as `a/b` as `a%2Fb`).
/// `None` for a malformed escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding() {
        use super::percent_decode;
        assert_eq!(percent_decode("plain-id").as_deref(), Some("plain-id"));
        assert_eq!(percent_decode("no%20such%2Fid").as_deref(), Some("no such/id"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }
}
