//! HTTP: the accept loop, the public v2 endpoints, the admin endpoints, and the one place errors
//! become statuses. Handlers are plain async functions of `(Arc<App>, Request)`, so tests can
//! call them without a socket.

pub mod admin;
pub mod error;
pub mod public;
pub mod server;
mod shadow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// A JSON body with its status and content type; every JSON answer of both ports goes through here.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
