//! `switchyard admin …`: inspect and steer a running gateway through its admin HTTP API —
//! promote, roll back, set challenger weights, reset, reload; read models, status and lineage.
//! Unlike `models` and `lineage`, which open a store directory, these verbs talk to
//! `switchyard serve` over plain HTTP/1.1 on its `admin_listen` address, so a change takes effect
//! in the serving process (which records it) rather than only in the store.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::AdminClient;

/// Where `switchyard serve` listens for admin requests unless its config says otherwise
/// (`config::DEFAULT_ADMIN_LISTEN`).
const DEFAULT_URL: &str = "http://127.0.0.1:8001";

/// `switchyard admin [--url URL] [--token T] [--json] <verb>`. The options are global, so they
/// may also follow the verb.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The gateway's admin address (its `admin_listen`) as an http:// URL.
    #[arg(long, env = "SWITCHYARD_ADMIN_URL", default_value = DEFAULT_URL, global = true)]
    url: String,
    /// Bearer token for the admin API, sent as `Authorization: Bearer T`.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the answer's JSON body as is, on one line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

/// The admin verbs, one admin API request each.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Show the gateway's status (health beyond readiness, e.g. the lineage writer).
    Status,
    /// Show every served model's routing and versions, or one model's.
    Models {
        /// Only this model.
        model: Option<String>,
    },
    /// Promote VERSION to champion of MODEL. With a `[model.promotion]` policy, its gates are
    /// judged first and a refusal lists what passed and what failed.
    Promote {
        model: String,
        version: u32,
        /// Promote even if gates fail (recorded as forced, with the actor).
        #[arg(long)]
        force: bool,
        /// Who acts, recorded by the gateway (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Roll MODEL back to its previous champion. With a `[model.promotion]` policy, it is judged
    /// by the gates like a promotion.
    Rollback {
        model: String,
        /// Roll back even if gates fail (recorded as forced, with the actor).
        #[arg(long)]
        force: bool,
        /// Who acts, recorded by the gateway (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Set MODEL's challengers: each VERSION=PERCENT gets that share of requests (0–100, at most
    /// 100 in all). With none given, the challengers are cleared.
    Weights {
        model: String,
        /// A challenger and its percent of requests, e.g. `2=30` or `3=2.5`.
        #[arg(value_name = "VERSION=PERCENT", value_parser = parse_weight)]
        weights: Vec<Weight>,
        /// Who acts, recorded by the gateway (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Drop MODEL's runtime routing changes: serve its configured routing again.
    Reset {
        model: String,
        /// Who acts, recorded by the gateway (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Re-read the gateway's config file and apply it; a refusal lists every problem.
    Reload {
        /// Who acts, recorded by the gateway (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Show how one request was answered, from the gateway's lineage records.
    Lineage {
        /// The request id, as the gateway assigned or received it.
        request_id: String,
    },
}

/// One `VERSION=PERCENT` argument of `admin weights`, checked on its own by clap's parser;
/// [`challengers`] checks them together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weight {
    version: u32,
    percent: f64,
}

/// Runs an admin verb against the gateway. Returns the process exit code; a refusal by the
/// gateway (any non-2xx answer) is an error, which `main` prints and exits 1 on.
pub fn run(args: AdminArgs) -> anyhow::Result<i32> {
    let client = AdminClient::new(&args.url, args.token.as_deref())?;
    let body = super::block_on(request(&client, &args.command))??;
    out!("{}", render(&args.command, &body, args.json)?);
    Ok(0)
}

/// Sends the verb's request and returns the answer's body when the gateway accepted it. Every
/// argument is checked before anything is sent.
async fn request(client: &AdminClient, command: &AdminCommand) -> anyhow::Result<Value> {
    let actor = |given: &Option<String>| super::actor(given.clone());
    let answer = match command {
        AdminCommand::Status => client.status().await,
        AdminCommand::Models { model: None } => client.models().await,
        AdminCommand::Models { model: Some(model) } => client.model(model).await,
        AdminCommand::Promote { model, version, force, actor: given } => {
            client.promote(model, *version, *force, &actor(given)).await
        }
        AdminCommand::Rollback { model, force, actor: given } => client.rollback(model, *force, &actor(given)).await,
        AdminCommand::Weights { model, weights, actor: given } => {
            let challengers = challengers(weights)?;
            client.set_weights(model, &challengers, &actor(given)).await
        }
        AdminCommand::Reset { model, actor: given } => client.reset(model, &actor(given)).await,
        AdminCommand::Reload { actor: given } => client.reload(&actor(given)).await,
        AdminCommand::Lineage { request_id } => client.lineage(request_id).await,
    };
    Ok(answer?)
}

/// What a verb prints for an accepted request: with `--json` the body on one line; otherwise a
/// short line where the answer says it all, else the body as pretty JSON.
fn render(command: &AdminCommand, body: &Value, json: bool) -> anyhow::Result<String> {
    if json {
        return Ok(serde_json::to_string(body)?);
    }
    Ok(match command {
        AdminCommand::Status => status_summary(body),
        AdminCommand::Models { model: None } => body
            .as_array()
            .map(|models| models.iter().map(model_summary).collect::<Vec<_>>().join("\n\n"))
            .unwrap_or_default(),
        AdminCommand::Models { model: Some(_) }
        | AdminCommand::Promote { .. }
        | AdminCommand::Rollback { .. }
        | AdminCommand::Weights { .. } => model_summary(body),
        AdminCommand::Reset { model, .. } => match (body.get("changed").and_then(Value::as_bool), body.get("model")) {
            (Some(false), _) => format!("{model} already serves its configured routing"),
            (Some(true), Some(state)) => format!("{model} reset to its configured routing\n{}", model_summary(state)),
            _ => serde_json::to_string_pretty(body)?,
        },
        AdminCommand::Reload { .. } => reload_summary(body),
        AdminCommand::Lineage { .. } => serde_json::to_string_pretty(body)?,
    })
}

/// "status: ok" and the lineage writer's figures, a line each.
fn status_summary(body: &Value) -> String {
    let mut lines = vec![format!("status: {}", text(&body["status"]))];
    if let Some(lineage) = body["lineage"].as_object() {
        let figures: Vec<String> = lineage.iter().map(|(k, v)| format!("{k} {}", text(v))).collect();
        lines.push(format!("lineage: {}", figures.join(", ")));
    }
    lines.join("\n")
}

/// One model's routing for people: who is champion and why, the split, and each version's
/// recent figures.
fn model_summary(m: &Value) -> String {
    let r = &m["routing"];
    let origin = &m["origin"];
    let why = match origin["kind"].as_str() {
        Some("config") => "as configured".to_owned(),
        Some("guard_trip") => format!("guard trip at {}", text(&origin["at"])),
        Some("operator") => {
            format!("{} by {} at {}", text(&origin["action"]), text(&origin["actor"]), text(&origin["at"]))
        }
        _ => text(origin),
    };
    let percent = |list: &Value, key: &str| -> String {
        let parts: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{} = {}%", text(&e["version"]), text(&e[key])))
            .collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    };
    let mut lines = vec![
        format!(
            "{}: champion {} ({}; route {}), {}",
            text(&m["name"]),
            text(&r["champion"]),
            why,
            text(&r["champion_route"]),
            { format!("{}% of requests", text(&r["champion_weight_percent"])) }
        ),
        format!("  challengers: {}", percent(&r["challengers"], "weight_percent")),
        format!("  shadows:     {}", percent(&r["shadows"], "percent")),
        format!("  backup:      {}", list(&r["backup"])),
    ];
    if m["guard_alarm"].is_object() {
        lines.push("  ALARM: the champion breaches its guard and no backup is healthy".to_owned());
    }
    for v in m["versions"].as_array().into_iter().flatten() {
        let line = match v["state"].as_str() {
            Some("ready") => format!(
                "  v{:<4} ready   {:<10} {} requests, {:.1}% errors, p99 {:.1} ms over {} s{}",
                text(&v["version"]),
                text(&v["stage"]),
                text(&v["recent"]["requests"]),
                v["recent"]["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
                v["recent"]["p99_ms"].as_f64().unwrap_or(0.0),
                v["recent"]["window_ms"].as_u64().unwrap_or(0) / 1000,
                if v["ejected"] == true { " (ejected by the guard)" } else { "" }
            ),
            _ => format!("  v{:<4} FAILED  {}", text(&v["version"]), text(&v["reason"])),
        };
        lines.push(line);
    }
    lines.join("\n")
}

/// What a reload changed.
fn reload_summary(body: &Value) -> String {
    let mut lines = vec!["reloaded".to_owned()];
    for key in ["loaded", "unloaded", "rerouted", "ignored"] {
        if body[key].as_array().is_some_and(|a| !a.is_empty()) {
            lines.push(format!("  {key}: {}", list(&body[key])));
        }
    }
    lines.join("\n")
}

/// A JSON value as people read it: strings without quotes, null as "-".
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

/// Parses one `VERSION=PERCENT` argument: a version number from 1 and a percent from 0 to 100
/// (a trailing `%` is allowed). Errors name the argument and say what is expected.
fn parse_weight(text: &str) -> Result<Weight, String> {
    let Some((version, percent)) = text.split_once('=') else {
        return Err(format!("{text:?} is not VERSION=PERCENT (e.g. 2=30)"));
    };
    let version = match version.trim().parse::<u32>() {
        Ok(v) if v >= 1 => v,
        _ => return Err(format!("in {text:?}: {version:?} is not a version number (a whole number from 1)")),
    };
    let trimmed = percent.trim();
    let number = trimmed.strip_suffix('%').unwrap_or(trimmed).trim();
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..=100.0).contains(&p) => Ok(Weight { version, percent: p }),
        _ => Err(format!("in {text:?}: {percent:?} is not a percent (a number from 0 to 100)")),
    }
}

/// The `challengers` map of a weights request: refuses a version given twice and weights that
/// add up to more than 100 %, so the mistake is reported before anything is sent.
fn challengers(weights: &[Weight]) -> anyhow::Result<BTreeMap<u32, f64>> {
    let mut map = BTreeMap::new();
    for w in weights {
        if let Some(earlier) = map.insert(w.version, w.percent) {
            bail!("version {} is given twice ({}={earlier} and {}={})", w.version, w.version, w.version, w.percent);
        }
    }
    // In basis points, as the gateway keeps weights (two decimals), so 33.33 × 3 is not refused.
    let total_bp: f64 = map.values().map(|p| (p * 100.0).round()).sum();
    if total_bp > 10_000.0 {
        bail!("challenger weights add up to {}%, more than 100", total_bp / 100.0);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use clap::Parser as _;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;
    use crate::client::encode_segment;
    use bytes::Bytes;
    use http::{Request, StatusCode, header};
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::rt::TokioIo;
    use serde_json::json;
    use std::time::Duration;

    // ---- V=PCT ----

    #[test]
    fn weights_parse() {
        assert_eq!(parse_weight("2=30").unwrap(), Weight { version: 2, percent: 30.0 });
        assert_eq!(parse_weight("3=2.5").unwrap(), Weight { version: 3, percent: 2.5 });
        assert_eq!(parse_weight("3=5%").unwrap(), Weight { version: 3, percent: 5.0 });
        assert_eq!(parse_weight(" 4 = 0 ").unwrap(), Weight { version: 4, percent: 0.0 });
        assert_eq!(parse_weight("5=100").unwrap(), Weight { version: 5, percent: 100.0 });
    }

    #[test]
    fn weights_with_a_bad_version_are_refused() {
        for bad in ["0=10", "-1=10", "x=10", "=10", "2.5=10", "v2=10", "99999999999=10"] {
            let message = parse_weight(bad).expect_err(bad);
            assert!(message.contains("not a version number"), "{bad:?}: {message}");
            assert!(message.contains(bad), "{bad:?}: {message}");
        }
        let message = parse_weight("2:30").expect_err("no =");
        assert!(message.contains("VERSION=PERCENT"), "{message}");
    }

    #[test]
    fn weights_with_a_bad_percent_are_refused() {
        for bad in ["2=", "2=abc", "2=-1", "2=-0.5", "2=100.01", "2=250", "2=NaN", "2=inf", "2=30=40", "2=%"] {
            let message = parse_weight(bad).expect_err(bad);
            assert!(message.contains("not a percent (a number from 0 to 100)"), "{bad:?}: {message}");
        }
    }

    #[test]
    fn challengers_refuse_duplicates_and_more_than_100_in_all() {
        let w = |version, percent| Weight { version, percent };
        assert_eq!(challengers(&[w(2, 30.0), w(3, 5.0)]).unwrap(), BTreeMap::from([(2, 30.0), (3, 5.0)]));
        assert!(challengers(&[]).unwrap().is_empty());
        assert_eq!(challengers(&[w(2, 33.333), w(3, 33.333), w(4, 33.333)]).unwrap().len(), 3);
        let message = challengers(&[w(2, 30.0), w(3, 5.0), w(2, 10.0)]).unwrap_err().to_string();
        assert!(message.contains("version 2 is given twice"), "{message}");
        let message = challengers(&[w(2, 60.0), w(3, 50.0)]).unwrap_err().to_string();
        assert!(message.contains("110%") && message.contains("more than 100"), "{message}");
    }

    #[test]
    fn the_command_line_parses_and_refuses_bad_weights() {
        let cli = crate::cli::Cli::try_parse_from(["switchyard", "admin", "weights", "mlp", "2=30", "3=5", "--json"])
            .unwrap();
        let crate::cli::Command::Admin(args) = cli.command else { panic!("not admin") };
        assert!(args.json);
        let AdminCommand::Weights { model, weights, actor } = args.command else { panic!("not weights") };
        assert_eq!(model, "mlp");
        assert_eq!(weights, [Weight { version: 2, percent: 30.0 }, Weight { version: 3, percent: 5.0 }]);
        assert_eq!(actor, None);
        // Clearing: no weights at all.
        let cli = crate::cli::Cli::try_parse_from(["switchyard", "admin", "weights", "mlp"]).unwrap();
        let crate::cli::Command::Admin(args) = cli.command else { panic!("not admin") };
        assert!(matches!(args.command, AdminCommand::Weights { weights, .. } if weights.is_empty()));
        let e = crate::cli::Cli::try_parse_from(["switchyard", "admin", "weights", "mlp", "2=130"]).unwrap_err();
        assert!(e.to_string().contains("not a percent"), "{e}");
    }

    // ---- URLs ----

    #[test]
    fn urls_are_checked() {
        let c = AdminClient::new("http://127.0.0.1:8001", None).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.base_path.as_str()), ("127.0.0.1", 8001, ""));
        assert_eq!(c.authority, "127.0.0.1:8001");
        let c = AdminClient::new("http://localhost/", None).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.url.as_str()), ("localhost", 80, "http://localhost"));
        let c = AdminClient::new("http://[::1]:9000", None).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 9000));
        let c = AdminClient::new("http://gw.internal:8001/switchyard/", None).unwrap();
        assert_eq!(c.base_path, "/switchyard");

        let https = AdminClient::new("https://127.0.0.1:8001", None).unwrap_err().to_string();
        assert!(https.contains("https is not supported"), "{https}");
        for bad in [
            "127.0.0.1:8001",
            "localhost",
            "ftp://x",
            "http://",
            "http://u:p@h:1",
            "http://h:1/?a=b",
            "http://h:",
            "http://h:0",
            "http://h:99999",
        ] {
            let message = AdminClient::new(bad, None).expect_err(bad).to_string();
            assert!(message.starts_with("invalid admin URL"), "{bad:?}: {message}");
        }
    }

    #[test]
    fn tokens_are_checked_and_not_printed() {
        let c = AdminClient::new(DEFAULT_URL, Some("s3cret")).unwrap();
        assert_eq!(c.authorization.as_ref().unwrap(), "Bearer s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(AdminClient::new(DEFAULT_URL, Some("  ")).unwrap().authorization.is_none());
        assert!(AdminClient::new(DEFAULT_URL, Some("a\nb")).is_err());
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("mlp-v2_x.y~z"), "mlp-v2_x.y~z");
        assert_eq!(encode_segment("a b/c?d%e#é"), "a%20b%2Fc%3Fd%25e%23%C3%A9");
    }

    #[test]
    fn rendering() {
        let reload = AdminCommand::Reload { actor: None };
        assert_eq!(render(&reload, &json!({"result": "ok", "loaded": []}), false).unwrap(), "reloaded");
        let report = json!({"result": "ok", "loaded": ["mlp:4"], "unloaded": [], "rerouted": ["mlp"]});
        assert_eq!(render(&reload, &report, false).unwrap(), "reloaded\n  loaded: mlp:4\n  rerouted: mlp");
        assert_eq!(render(&reload, &json!({"result": "ok"}), true).unwrap(), r#"{"result":"ok"}"#);
        let reset = AdminCommand::Reset { model: "mlp".to_owned(), actor: None };
        let unchanged = json!({"changed": false, "model": {"name": "mlp"}});
        assert_eq!(render(&reset, &unchanged, false).unwrap(), "mlp already serves its configured routing");
        let model = json!({
            "name": "mlp",
            "origin": {"kind": "operator", "action": "promoted", "actor": "alice", "at": "2026-12-08T00:00:00Z"},
            "routing": {"champion": 2, "champion_route": "champion", "champion_weight_percent": 80.0,
                        "challengers": [{"version": 3, "weight_percent": 20.0}], "shadows": [], "backup": [1]},
            "versions": [
                {"version": 2, "state": "ready", "stage": "production",
                 "recent": {"requests": 40, "error_rate": 0.025, "p99_ms": 3.25, "window_ms": 30000}, "ejected": false},
                {"version": 3, "state": "failed", "reason": "corrupt artifact"},
            ],
        });
        let changed = render(&reset, &json!({"changed": true, "model": model}), false).unwrap();
        assert_eq!(
            changed,
            "mlp reset to its configured routing\n\
             mlp: champion 2 (promoted by alice at 2026-12-08T00:00:00Z; route champion), 80.0% of requests\n\
             \x20 challengers: 3 = 20.0%\n\
             \x20 shadows:     none\n\
             \x20 backup:      1\n\
             \x20 v2    ready   production 40 requests, 2.5% errors, p99 3.2 ms over 30 s\n\
             \x20 v3    FAILED  corrupt artifact"
        );
        let status = json!({"status": "ok", "lineage": {"healthy": true, "queued": 0}});
        assert_eq!(
            render(&AdminCommand::Status, &status, false).unwrap(),
            "status: ok\nlineage: healthy true, queued 0"
        );
        assert_eq!(render(&AdminCommand::Status, &status, true).unwrap(), status.to_string(), "--json: the body as is");
    }

    // ---- against a fake admin server ----

    /// One request as the fake server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        authorization: Option<String>,
        body: String,
    }

    /// A fake admin API on 127.0.0.1:0 that answers every request with `status` and the body
    /// `answer` (or never, when `status` is `None`) and records what it received.
    async fn fake_admin(status: Option<StatusCode>, answer: impl ToString) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
        let answer = answer.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, answer) = (log.clone(), answer.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    let (log, answer) = (log.clone(), answer.clone());
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().to_string();
                        let authorization =
                            req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap().to_owned());
                        let body = req.into_body().collect().await?.to_bytes();
                        let body = String::from_utf8(body.to_vec()).unwrap();
                        log.lock().unwrap().push(Seen { method, path, authorization, body });
                        let Some(status) = status else {
                            return std::future::pending().await;
                        };
                        let mut response = hyper::Response::new(Full::new(Bytes::from(answer)));
                        *response.status_mut() = status;
                        Ok::<_, hyper::Error>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, seen)
    }

    fn client(addr: SocketAddr, token: Option<&str>) -> AdminClient {
        AdminClient::new(&format!("http://{addr}"), token).unwrap()
    }

    fn only(seen: &Mutex<Vec<Seen>>) -> Seen {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen[0].clone()
    }

    #[tokio::test]
    async fn promote_posts_the_version_and_actor() {
        let state = json!({"name": "mlp", "routing": {"champion": 3}});
        let (addr, seen) = fake_admin(Some(StatusCode::OK), &state).await;
        let promote = AdminCommand::Promote {
            model: "mlp".to_owned(),
            version: 3,
            force: false,
            actor: Some("tester".to_owned()),
        };
        assert_eq!(request(&client(addr, None), &promote).await.unwrap(), state);
        let seen = only(&seen);
        assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/admin/models/mlp/promote"));
        assert_eq!(serde_json::from_str::<Value>(&seen.body).unwrap(), json!({"version": 3, "actor": "cli:tester"}));
        assert_eq!(seen.authorization, None);
    }

    #[tokio::test]
    async fn every_verb_sends_its_request() {
        let (addr, seen) = fake_admin(Some(StatusCode::OK), json!({})).await;
        let c = client(addr, None);
        let actor = || Some("t".to_owned());
        let model = || "mlp".to_owned();
        let weights = vec![Weight { version: 2, percent: 30.0 }, Weight { version: 3, percent: 5.0 }];
        let cases = [
            (AdminCommand::Status, "GET", "/admin/status", ""),
            (AdminCommand::Models { model: None }, "GET", "/admin/models", ""),
            (AdminCommand::Models { model: Some(model()) }, "GET", "/admin/models/mlp", ""),
            (
                AdminCommand::Rollback { model: model(), force: false, actor: actor() },
                "POST",
                "/admin/models/mlp/rollback",
                r#"{"actor":"cli:t"}"#,
            ),
            (
                AdminCommand::Weights { model: model(), weights, actor: actor() },
                "POST",
                "/admin/models/mlp/weights",
                r#"{"actor":"cli:t","challengers":{"2":30.0,"3":5.0}}"#,
            ),
            (
                AdminCommand::Weights { model: model(), weights: vec![], actor: actor() },
                "POST",
                "/admin/models/mlp/weights",
                r#"{"actor":"cli:t","challengers":{}}"#,
            ),
            (
                AdminCommand::Reset { model: model(), actor: actor() },
                "POST",
                "/admin/models/mlp/reset",
                r#"{"actor":"cli:t"}"#,
            ),
            (AdminCommand::Reload { actor: actor() }, "POST", "/admin/reload", r#"{"actor":"cli:t"}"#),
            (AdminCommand::Lineage { request_id: "req 1/2".to_owned() }, "GET", "/admin/lineage/req%201%2F2", ""),
        ];
        for (command, method, path, body) in &cases {
            request(&c, command).await.unwrap();
            let last = seen.lock().unwrap().pop().unwrap();
            assert_eq!((last.method.as_str(), last.path.as_str()), (*method, *path), "{command:?}");
            if body.is_empty() {
                assert_eq!(last.body, "", "{command:?}");
            } else {
                let sent: Value = serde_json::from_str(&last.body).unwrap();
                assert_eq!(sent, serde_json::from_str::<Value>(body).unwrap(), "{command:?}");
            }
        }
    }

    #[tokio::test]
    async fn bad_weights_send_nothing() {
        let (addr, seen) = fake_admin(Some(StatusCode::OK), json!({})).await;
        let weights = vec![Weight { version: 2, percent: 30.0 }, Weight { version: 2, percent: 5.0 }];
        let command = AdminCommand::Weights { model: "mlp".to_owned(), weights, actor: None };
        let message = request(&client(addr, None), &command).await.unwrap_err().to_string();
        assert!(message.contains("given twice"), "{message}");
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_error_answer_carries_its_status_and_message() {
        let (addr, _seen) = fake_admin(Some(StatusCode::CONFLICT), json!({"error": "x"})).await;
        let promote = AdminCommand::Promote { model: "mlp".to_owned(), version: 3, force: false, actor: None };
        let message = request(&client(addr, None), &promote).await.unwrap_err().to_string();
        assert_eq!(message, "409 Conflict: x");
    }

    #[tokio::test]
    async fn a_refused_reload_lists_its_problems() {
        let answer =
            json!({"error": "the new config is refused", "problems": ["models.mlp: no version 9", "listen: bad"]});
        let (addr, _seen) = fake_admin(Some(StatusCode::UNPROCESSABLE_ENTITY), answer).await;
        let message =
            request(&client(addr, None), &AdminCommand::Reload { actor: None }).await.unwrap_err().to_string();
        assert_eq!(
            message,
            "422 Unprocessable Entity: the new config is refused\n  - models.mlp: no version 9\n  - listen: bad"
        );
    }

    #[tokio::test]
    async fn an_error_body_that_is_not_json_is_shown() {
        let (addr, _seen) = fake_admin(Some(StatusCode::BAD_GATEWAY), "  upstream went away\n").await;
        let message = request(&client(addr, None), &AdminCommand::Status).await.unwrap_err().to_string();
        assert_eq!(message, "502 Bad Gateway: upstream went away");
        let (addr, _seen) = fake_admin(Some(StatusCode::METHOD_NOT_ALLOWED), "").await;
        let message = request(&client(addr, None), &AdminCommand::Status).await.unwrap_err().to_string();
        assert_eq!(message, "405 Method Not Allowed");
    }

    #[tokio::test]
    async fn a_success_body_that_is_not_json_is_an_error() {
        let (addr, _seen) = fake_admin(Some(StatusCode::OK), "<html>").await;
        let message = request(&client(addr, None), &AdminCommand::Status).await.unwrap_err().to_string();
        assert!(message.contains("answered GET /admin/status with 200 OK but not JSON"), "{message}");
        assert!(message.ends_with(": <html>"), "{message}");
    }

    #[tokio::test]
    async fn the_token_is_sent_as_a_bearer_header() {
        let (addr, seen) = fake_admin(Some(StatusCode::OK), json!({"status": "ok"})).await;
        request(&client(addr, Some("s3cret")), &AdminCommand::Status).await.unwrap();
        assert_eq!(only(&seen).authorization.as_deref(), Some("Bearer s3cret"));
    }

    #[tokio::test]
    async fn unauthorized_without_a_token_says_how_to_send_one() {
        let (addr, _seen) = fake_admin(Some(StatusCode::UNAUTHORIZED), json!({"error": "a token is required"})).await;
        let message = request(&client(addr, None), &AdminCommand::Status).await.unwrap_err().to_string();
        assert!(message.starts_with("401 Unauthorized: a token is required"), "{message}");
        assert!(message.contains("--token"), "{message}");
    }

    #[tokio::test]
    async fn connection_refused_names_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let message = request(&client(addr, None), &AdminCommand::Status).await.unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "cannot reach the admin API at http://{addr}: connection refused; is `switchyard serve` running, \
                 and is --url its admin address?"
            )
        );
    }

    #[tokio::test]
    async fn a_silent_gateway_times_out() {
        let (addr, seen) = fake_admin(None, "").await;
        let mut c = client(addr, None);
        c.timeout = Duration::from_millis(200);
        let message = request(&c, &AdminCommand::Status).await.unwrap_err().to_string();
        assert!(message.contains("did not answer GET /admin/status within 0.2 s"), "{message}");
        assert_eq!(only(&seen).path, "/admin/status");
    }
}
