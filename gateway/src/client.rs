//! The typed client of the admin API: what `switchyard admin` uses, and what the end-to-end
//! tests steer a running gateway with. One method per admin verb; answers are the API's JSON
//! bodies; a refusal is an `AdminError::Refused` with the status and the gateway's message.
//! Plain HTTP/1.1, one connection per request, an optional bearer token, a timeout on the whole
//! exchange.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// Why an admin request got no accepted answer.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The URL or token cannot be used; nothing was sent.
    #[error("{0}")]
    Invalid(String),
    /// No connection, no answer in time, or an answer that is not the admin API's.
    #[error("{0}")]
    Transport(String),
    /// The gateway answered with a non-2xx status: `message` is the status and its `error`
    /// (and each of its `problems` on a line of its own); `body` is the whole answer.
    #[error("{message}")]
    Refused { status: u16, message: String, body: Value },
}

type Result<T> = std::result::Result<T, AdminError>;

fn invalid(message: String) -> AdminError {
    AdminError::Invalid(message)
}

fn transport(message: String) -> AdminError {
    AdminError::Transport(message)
}

/// How long one request may take, connecting included: a gateway that does not answer in this
/// time is stuck or unreachable, and a script calling the CLI should hear so rather than hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one gateway's admin API.
#[derive(Debug)]
pub struct AdminClient {
    /// The URL as given, without a trailing `/`, for messages.
    pub(crate) url: String,
    /// Host to connect to (an IPv6 address without its brackets) and port.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The `Host` header: the URL's authority.
    pub(crate) authority: HeaderValue,
    /// A path prefix from the URL (`http://proxy/switchyard`), without a trailing `/`; usually empty.
    pub(crate) base_path: String,
    /// `Bearer …`, marked sensitive so `Debug` does not print it.
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) timeout: Duration,
}

impl AdminClient {
    /// Checks the URL (http:// only, a host, no query or credentials) and the token.
    pub fn new(url: &str, token: Option<&str>) -> Result<Self> {
        const EXPECTED: &str = "expected http://HOST:PORT, e.g. http://127.0.0.1:8001";
        let trimmed = url.trim().trim_end_matches('/');
        let uri: Uri = trimmed.parse().map_err(|e| invalid(format!("invalid admin URL {url:?}: {e}; {EXPECTED}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(s) if s.eq_ignore_ascii_case("https") => {
                return Err(invalid(format!(
                    "invalid admin URL {url:?}: https is not supported; the admin API is plain HTTP \
                 (keep it on loopback or a private network, or tunnel to it), so use http://"
                )));
            }
            Some(s) if s.eq_ignore_ascii_case("http") => {}
            Some(other) => {
                return Err(invalid(format!("invalid admin URL {url:?}: unsupported scheme {other:?}; {EXPECTED}")));
            }
            None => return Err(invalid(format!("invalid admin URL {url:?}: no http:// scheme; {EXPECTED}"))),
        }
        let Some(authority) = uri.authority() else {
            return Err(invalid(format!("invalid admin URL {url:?}: no host; {EXPECTED}")));
        };
        if authority.as_str().contains('@') {
            return Err(invalid(format!(
                "invalid admin URL {url:?}: credentials in the URL are not supported; use --token"
            )));
        }
        if uri.query().is_some() {
            return Err(invalid(format!("invalid admin URL {url:?}: a query is not supported; {EXPECTED}")));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(invalid(format!("invalid admin URL {url:?}: no host; {EXPECTED}")));
        }
        // `http::Uri` accepts any digits as a port (`port_u16` is then `None`), so read it here.
        let text = authority.as_str();
        let port = match text.rfind(':').filter(|&at| !text[at..].contains(']')) {
            None => 80,
            Some(at) => match text[at + 1..].parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(invalid(format!(
                        "invalid admin URL {url:?}: {:?} is not a port (1–65535); {EXPECTED}",
                        &text[at + 1..]
                    )));
                }
            },
        };
        let authorization = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| invalid("the admin token has characters an HTTP header cannot carry".to_owned()))?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(Self {
            url: trimmed.to_owned(),
            host,
            port,
            authority: HeaderValue::from_str(authority.as_str())
                .map_err(|e| invalid(format!("invalid admin URL {url:?}: {e}")))?,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            authorization,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// `GET /admin/status`: health beyond readiness (the lineage writer).
    pub async fn status(&self) -> Result<Value> {
        self.get("/admin/status").await
    }

    /// `GET /admin/models`: every served model's routing and versions.
    pub async fn models(&self) -> Result<Value> {
        self.get("/admin/models").await
    }

    /// `GET /admin/models/{model}`: one model's routing, versions and why.
    pub async fn model(&self, model: &str) -> Result<Value> {
        self.get(&model_path(model, "")?).await
    }

    /// `GET /admin/models/{model}/gates/{version}`: the promotion gates judged now.
    pub async fn gates(&self, model: &str, version: u32) -> Result<Value> {
        self.get(&model_path(model, &format!("/gates/{version}"))?).await
    }

    /// `POST /admin/models/{model}/promote`: `version` becomes champion (gates judged first;
    /// `force` overrides a failure, recorded).
    pub async fn promote(&self, model: &str, version: u32, force: bool, actor: &str) -> Result<Value> {
        let mut body = json!({ "version": version, "actor": actor });
        if force {
            body["force"] = json!(true);
        }
        self.post(&model_path(model, "/promote")?, &body).await
    }

    /// `POST /admin/models/{model}/rollback`: the previous champion back (judged by the gates
    /// like a promotion; `force` overrides a failure, recorded).
    pub async fn rollback(&self, model: &str, force: bool, actor: &str) -> Result<Value> {
        let mut body = json!({ "actor": actor });
        if force {
            body["force"] = json!(true);
        }
        self.post(&model_path(model, "/rollback")?, &body).await
    }

    /// `POST /admin/models/{model}/weights`: the challengers and their percent of requests
    /// (an empty map clears them).
    pub async fn set_weights(&self, model: &str, challengers: &BTreeMap<u32, f64>, actor: &str) -> Result<Value> {
        self.post(&model_path(model, "/weights")?, &json!({ "challengers": challengers, "actor": actor })).await
    }

    /// `POST /admin/models/{model}/reset`: the configured routing again. The answer says whether
    /// anything `changed`, and the `model` as it now serves.
    pub async fn reset(&self, model: &str, actor: &str) -> Result<Value> {
        self.post(&model_path(model, "/reset")?, &json!({ "actor": actor })).await
    }

    /// `POST /admin/reload`: re-read the config file; a refusal lists every problem.
    pub async fn reload(&self, actor: &str) -> Result<Value> {
        self.post("/admin/reload", &json!({ "actor": actor })).await
    }

    /// `GET /admin/lineage/{request_id}`: how one request was answered.
    pub async fn lineage(&self, request_id: &str) -> Result<Value> {
        if request_id.is_empty() {
            return Err(invalid("the request id is empty".to_owned()));
        }
        self.get(&format!("/admin/lineage/{}", encode_segment(request_id))).await
    }

    /// `GET /admin/registry/models`: the registry's models, their version counts and aliases.
    pub async fn registry_models(&self) -> Result<Value> {
        self.get("/admin/registry/models").await
    }

    /// `GET /admin/registry/models/{model}`: its versions.
    pub async fn registry_versions(&self, model: &str) -> Result<Value> {
        self.get(&registry_path(model, "")?).await
    }

    /// `GET /admin/registry/models/{model}/versions/{selector}`: one version (number or alias),
    /// its provenance and events.
    pub async fn registry_version(&self, model: &str, selector: &str) -> Result<Value> {
        self.get(&registry_path(model, &format!("/versions/{}", encode_segment(selector)))?).await
    }

    /// `POST /admin/registry/models/{model}/versions`: registers `artifact` (the model file) with
    /// its `manifest` (a JSON object, or TOML text), after the gateway's engine has read its
    /// signature. The answer says whether a version was `created`.
    pub async fn register(&self, model: &str, artifact: &[u8], manifest: Option<Value>, actor: &str) -> Result<Value> {
        use base64::Engine as _;
        let body = json!({
            "artifact": base64::engine::general_purpose::STANDARD.encode(artifact),
            "manifest": manifest,
            "actor": actor,
        });
        self.post(&registry_path(model, "/versions")?, &body).await
    }

    /// `POST …/versions` with `upstream`: registers a remote version, answered by another v2
    /// server; the gateway reads the model's signature from it.
    pub async fn register_remote(
        &self,
        model: &str,
        upstream: &model_store::Upstream,
        manifest: Option<Value>,
        actor: &str,
    ) -> Result<Value> {
        let body = json!({ "upstream": upstream, "manifest": manifest, "actor": actor });
        self.post(&registry_path(model, "/versions")?, &body).await
    }

    /// `POST …/versions/{selector}/stage`: moves a version to `stage` (archiving a served version
    /// needs `force`).
    pub async fn set_stage(&self, model: &str, selector: &str, stage: &str, force: bool, actor: &str) -> Result<Value> {
        let path = registry_path(model, &format!("/versions/{}/stage", encode_segment(selector)))?;
        self.post(&path, &json!({ "stage": stage, "force": force, "actor": actor })).await
    }

    /// `POST …/aliases/{alias}`: points `alias` at the version `selector` names.
    pub async fn set_alias(&self, model: &str, alias: &str, selector: &str, actor: &str) -> Result<Value> {
        let path = registry_path(model, &format!("/aliases/{}", encode_segment(alias)))?;
        self.post(&path, &json!({ "version": selector, "actor": actor })).await
    }

    /// `DELETE …/aliases/{alias}`: removes it (the alias of a served version needs `force`).
    pub async fn remove_alias(&self, model: &str, alias: &str, force: bool, actor: &str) -> Result<Value> {
        let path = registry_path(model, &format!("/aliases/{}", encode_segment(alias)))?;
        let (status, body) = self.send(Method::DELETE, &path, Some(&json!({ "force": force, "actor": actor }))).await?;
        self.accepted(status, body)
    }

    /// `GET path`; the body when the answer is 2xx, else the gateway's error.
    async fn get(&self, path: &str) -> Result<Value> {
        let (status, body) = self.send(Method::GET, path, None).await?;
        self.accepted(status, body)
    }

    /// `POST path` with a JSON body; the answer's body when it is 2xx, else the gateway's error.
    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let (status, body) = self.send(Method::POST, path, Some(body)).await?;
        self.accepted(status, body)
    }

    /// One exchange under the timeout: the status and the body as JSON (a body that is not JSON
    /// comes back as a JSON string when the status is an error, for the message).
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(StatusCode, Value)> {
        match tokio::time::timeout(self.timeout, self.exchange(&method, path, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(transport(format!(
                "the admin API at {} did not answer {method} {path} within {} s",
                self.url,
                self.timeout.as_secs_f64()
            ))),
        }
    }

    async fn exchange(&self, method: &Method, path: &str, body: Option<&Value>) -> Result<(StatusCode, Value)> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| self.unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport(format!("cannot talk HTTP to the admin API at {}: {e}", self.url)))?;
        // The connection does the I/O while `sender` waits for the answer; it ends when the
        // answer is read and `sender` dropped. Its errors also reach `send_request`.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base_path))
            .header(header::HOST, self.authority.clone())
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(authorization) = &self.authorization {
            builder = builder.header(header::AUTHORIZATION, authorization.clone());
        }
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = builder.body(Full::new(bytes)).map_err(|e| invalid(format!("cannot build the request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport(format!("the admin API at {} did not answer {method} {path}: {e}", self.url)))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(format!("reading the admin API's answer to {method} {path}: {e}")))?
            .to_bytes();
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => Ok((status, value)),
            Err(_) if !status.is_success() => Ok((status, Value::String(snippet(&bytes)))),
            Err(e) => Err(transport(format!(
                "the admin API at {} answered {method} {path} with {} but not JSON ({e}): {}",
                self.url,
                status_text(status),
                snippet(&bytes)
            ))),
        }
    }

    /// The error for a failed connect, naming the URL; a refused connection gets the usual causes.
    fn unreachable(&self, e: &std::io::Error) -> AdminError {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            transport(format!(
                "cannot reach the admin API at {}: connection refused; is `switchyard serve` running, \
                 and is --url its admin address?",
                self.url
            ))
        } else {
            transport(format!("cannot reach the admin API at {}: {e}", self.url))
        }
    }

    /// The body of a 2xx answer; otherwise an error of the status and the gateway's `error`
    /// message, each of its `problems` on a line of its own (a refused reload lists them).
    fn accepted(&self, status: StatusCode, body: Value) -> Result<Value> {
        if status.is_success() {
            return Ok(body);
        }
        let message = match &body {
            Value::Null => String::new(),
            Value::String(text) => text.clone(),
            other => match other.get("error") {
                Some(Value::String(text)) => text.clone(),
                _ => other.to_string(),
            },
        };
        let mut text = status_text(status);
        if !message.is_empty() {
            let _ = write!(text, ": {message}");
        }
        if status == StatusCode::UNAUTHORIZED && self.authorization.is_none() {
            text.push_str(" (no token was sent: pass --token or set SWITCHYARD_ADMIN_TOKEN)");
        }
        for problem in body.get("problems").and_then(Value::as_array).into_iter().flatten() {
            match problem {
                Value::String(p) => {
                    let _ = write!(text, "\n  - {p}");
                }
                other => {
                    let _ = write!(text, "\n  - {other}");
                }
            }
        }
        Err(AdminError::Refused { status: status.as_u16(), message: text, body })
    }
}

/// `409 Conflict`; just the number for a code without a reason phrase.
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// A body that is not JSON, for a message: trimmed, and cut at 200 characters.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters, so a
/// request id or model name with `/`, `?`, `%` or spaces stays one segment.
pub(crate) fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `/admin/models/{model}{rest}`, the name percent-encoded. An empty name is refused: it would
/// address the list instead.
/// `/admin/registry/models/{model}{rest}`, the name percent-encoded.
fn registry_path(model: &str, rest: &str) -> Result<String> {
    if model.is_empty() {
        return Err(invalid("the model name is empty".to_owned()));
    }
    Ok(format!("/admin/registry/models/{}{rest}", encode_segment(model)))
}

fn model_path(model: &str, rest: &str) -> Result<String> {
    if model.is_empty() {
        return Err(invalid("the model name is empty".to_owned()));
    }
    Ok(format!("/admin/models/{}{rest}", encode_segment(model)))
}
