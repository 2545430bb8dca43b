//! The operator console's static assets, embedded in the binary (no build step, no files to
//! deploy): one page and its script and style, served on the admin port under `/ui`. The page
//! reads and acts through the admin API the CLI uses (`docs/architecture.md`); it holds no data
//! of its own.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The asset at `path`, if it is one (GET or HEAD only).
pub fn asset(method: &Method, path: &str) -> Option<Response<Full<Bytes>>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let (body, kind) = match path.trim_end_matches('/') {
        "/ui" | "/ui/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/ui/console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/ui/console.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // The page may only load its own script and style, and talk to this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_assets_are_served_and_nothing_else() {
        let page = asset(&Method::GET, "/ui").expect("page");
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(asset(&Method::GET, "/ui/console.js").is_some());
        assert!(asset(&Method::GET, "/ui/../admin/models").is_none());
        assert!(asset(&Method::POST, "/ui").is_none());
        assert!(INDEX.contains("/ui/console.js") && INDEX.contains("/ui/console.css"));
    }
}
