//! Test support: registers fixtures with the real CLI, starts the real `switchyard serve` on
//! 127.0.0.1 with port 0, and speaks minimal HTTP/1.1 to it. Every server is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gateway::client::{AdminClient, AdminError};
use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// `switchyard models register … --json`, asserting success.
pub fn register(store: &Path, model: &str, fixture: &str, manifest: Option<&str>) -> Value {
    let mut cmd = Command::new(bin());
    cmd.args(["models", "register", "--json", "--model", model, "--store"]).arg(store);
    cmd.arg("--file").arg(fixtures().join("models").join(format!("{fixture}.onnx")));
    if let Some(m) = manifest {
        cmd.arg("--manifest").arg(fixtures().join("manifests").join(format!("{m}.toml")));
    }
    let out = cmd.output().expect("run switchyard");
    assert!(out.status.success(), "register failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("register --json prints JSON")
}

/// A store with every fixture registered: mlp v1..v3 (with manifests), mixed, dtypes, slow, faulty.
pub fn full_store(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    for v in 1..=3 {
        let name = format!("mlp_v{v}");
        register(&store, "mlp", &name, Some(&name));
    }
    for m in ["mixed", "dtypes", "slow", "faulty"] {
        register(&store, m, m, Some(m));
    }
    store
}

/// A running gateway.
pub struct Gateway {
    pub child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// The gRPC listener, when the config enables one (`grpc=http://…` on the listening line).
    pub grpc: Option<SocketAddr>,
}

impl Gateway {
    /// Writes `config` (with `{store}` replaced) and serves it; waits for the listening line.
    pub fn start(dir: &Path, store: &Path, config: &str) -> Gateway {
        let path = dir.join("config.toml");
        let text = config.replace("{store}", &store.display().to_string());
        std::fs::write(&path, text).expect("write config");
        let mut child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchyard");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("switchyard did not print its listening line within 60 s");
            }
        };
        let addr = |key: &str| -> SocketAddr {
            let start = line.find(key).unwrap_or_else(|| panic!("no {key} in {line:?}")) + key.len();
            line[start..].split_whitespace().next().expect("address").parse().expect("socket address")
        };
        let grpc = line.contains("grpc=http://").then(|| addr("grpc=http://"));
        Gateway { public: addr("public=http://"), admin: addr("admin=http://"), grpc, child }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        self.wait_exit()
    }

    /// Waits up to 30 s for the process to exit (after a signal already sent) and returns its
    /// status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("switchyard did not exit within 30 s of SIGTERM");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One request on a fresh connection (`Connection: close`), reading to EOF.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `request`, returning connection errors (refused, reset) instead of panicking: for clients
/// that run while the server shuts down.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a response"));
    }
    Ok(parse_response(&raw))
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines.next().expect("status line").split(' ').nth(1).expect("code").parse().expect("number");
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))).collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).expect("hex").trim(), 16).expect("hex size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

/// A request's lineage chain from the admin API once it holds at least `records` records, polled
/// for up to 10 s: the writer commits in batches (and shadow runs finish after their primary).
/// Any answer but 200 or 404 fails the test.
pub fn lineage(gw: &Gateway, request_id: &str, records: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(gw.admin, &format!("/admin/lineage/{request_id}"));
        if r.status == 200 && r.json()["records"].as_array().is_some_and(|a| a.len() >= records) {
            return r.json();
        }
        assert!(matches!(r.status, 200 | 404), "{}", String::from_utf8_lossy(&r.body));
        assert!(Instant::now() < deadline, "no lineage for {request_id} after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Response {
    request(addr, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
}

/// The config for `full_store`, all on port 0.
pub const FULL_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{store}"
[[model]]
name = "mlp"
versions = [1, 2, 3]
default_version = 2
[model.engine]
instances = 2
max_batch = 8
batch_delay_us = 500
[[model]]
name = "mixed"
versions = [1]
[[model]]
name = "dtypes"
versions = [1]
[[model]]
name = "slow"
versions = [1]
[model.engine]
instances = 2
[[model]]
name = "faulty"
versions = [1]
"#;

/// One answered request of a load run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the answer arrived.
    pub at: std::time::Instant,
    pub status: u16,
    pub version: Option<u32>,
    pub route: Option<String>,
    pub request_id: Option<String>,
    pub body: Vec<u8>,
}

/// Runs `threads` clients against `POST path` until `stop` says so (checked between requests,
/// with everything answered so far), each client sending `body(thread, i)`. Returns every
/// answer, in arrival order per client. Connection errors fail the test: the server must stay up.
pub fn load_until(
    addr: SocketAddr,
    path: &str,
    threads: usize,
    body: impl Fn(usize, usize) -> String + Sync,
    stop: impl Fn(&[Sample]) -> bool + Sync,
) -> Vec<Sample> {
    let samples = std::sync::Mutex::new(Vec::<Sample>::new());
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (samples, done, body, stop) = (&samples, &done, &body, &stop);
            s.spawn(move || {
                let mut i = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = request(addr, "POST", path, &[("Content-Type", "application/json")], body(t, i).as_bytes());
                    i += 1;
                    let sample = Sample {
                        at: std::time::Instant::now(),
                        status: r.status,
                        version: r.header("x-model-version").and_then(|v| v.parse().ok()),
                        route: r.header("x-model-route").map(str::to_owned),
                        request_id: r.header("x-request-id").map(str::to_owned),
                        body: r.body,
                    };
                    let mut all = samples.lock().expect("samples");
                    all.push(sample);
                    if stop(&all) {
                        done.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    samples.into_inner().expect("samples")
}

/// A JSON v2 body for the mlp-signature fixtures: `[1, 64]` FP32, every element `value`.
pub fn mlp_body(value: f32) -> String {
    serde_json::json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![value; 64]}]})
        .to_string()
}

/// `POST` a JSON body to the admin port as is: for tests of the admin API's own checks of what
/// it is sent. Steering a gateway goes through `admin`, the typed client.
pub fn admin_post(gw: &Gateway, path: &str, body: &Value) -> Response {
    post_json(gw.admin, path, body)
}

/// The typed admin client of `gw` (`gateway::client::AdminClient`, the one `switchyard admin`
/// uses), callable from a test thread.
pub fn admin(gw: &Gateway) -> Admin {
    let client = AdminClient::new(&format!("http://{}", gw.admin), None).expect("admin URL");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    Admin { client, rt }
}

/// `AdminClient`'s verbs, blocking. The actor of every action is the test's `actor` argument.
pub struct Admin {
    client: AdminClient,
    rt: tokio::runtime::Runtime,
}

impl Admin {
    pub fn model(&self, model: &str) -> Result<Value, AdminError> {
        self.rt.block_on(self.client.model(model))
    }

    pub fn gates(&self, model: &str, version: u32) -> Result<Value, AdminError> {
        self.rt.block_on(self.client.gates(model, version))
    }

    pub fn promote(&self, model: &str, version: u32, actor: &str) -> Result<Value, AdminError> {
        self.rt.block_on(self.client.promote(model, version, false, actor))
    }

    pub fn rollback(&self, model: &str, actor: &str) -> Result<Value, AdminError> {
        self.rt.block_on(self.client.rollback(model, false, actor))
    }

    pub fn set_weights(&self, model: &str, weights: &[(u32, f64)], actor: &str) -> Result<Value, AdminError> {
        let challengers = weights.iter().copied().collect();
        self.rt.block_on(self.client.set_weights(model, &challengers, actor))
    }

    pub fn reset(&self, model: &str, actor: &str) -> Result<Value, AdminError> {
        self.rt.block_on(self.client.reset(model, actor))
    }

    pub fn reload(&self, actor: &str) -> Result<Value, AdminError> {
        self.rt.block_on(self.client.reload(actor))
    }
}

/// The status and body of a refusal; panics on success or a transport failure.
pub fn refused(result: Result<Value, AdminError>) -> (u16, Value) {
    match result {
        Err(AdminError::Refused { status, body, .. }) => (status, body),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The value of the Prometheus sample `name` carrying every label of `labels`, from `/metrics`.
pub fn metric_value(gw: &Gateway, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = String::from_utf8(get(gw.admin, "/metrics").body).expect("UTF-8 metrics");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `switchyard ARGS` (ending in `--json` or printing JSON), asserting success; its stdout parsed.
pub fn cli_json(args: &[&str]) -> Value {
    let out = Command::new(bin()).args(args).output().expect("run switchyard");
    assert!(out.status.success(), "switchyard {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}
