//! `switchyard models card`: one version's model card, from what the store knows about it. What
//! it is for and its limits, its signature, provenance and offline metrics come from the
//! registration; the live figures (traffic, latency, errors, online quality, guard trips) and its
//! stage and alias history come from lineage, feedback and events, so the card says how the
//! version actually behaved rather than only how it was meant to.

use std::collections::BTreeMap;
use std::path::Path;

use clap::ValueEnum;
use model_store::{Event, FeedbackSummary, LineageStats, Manifest, VersionRecord};
use serde_json::{Value, json};

/// How `models card` prints the card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum CardFormat {
    /// A Markdown document, for people and for pasting into reviews.
    #[default]
    Markdown,
    /// One JSON object with the same figures, unrounded.
    Json,
}

/// Event kinds that record the guard moving traffic off a version (or finding no healthy backup
/// for it); they are recorded against the version that breached.
const GUARD_TRIP_KINDS: [&str; 2] = [Event::GUARD_TRIP, Event::GUARD_NO_HEALTHY_BACKUP];

/// Everything a card shows, read from the store.
#[derive(Debug)]
struct Card {
    version: VersionRecord,
    manifest: Option<Manifest>,
    traffic: LineageStats,
    quality: FeedbackSummary,
    /// Every event recorded against the version, oldest first.
    events: Vec<Event>,
}

/// `models card`: resolves `NAME:VERSION` (number or alias), reads the card and prints it.
///
/// The parts are read one after another, not in one snapshot: a gateway writing lineage at the
/// same time can make the traffic figures a few requests newer than the feedback figures.
pub(super) async fn card(store: &Path, target: &str, format: CardFormat) -> anyhow::Result<i32> {
    let (name, selector) = super::models::parse_version_target(target)?;
    let store = super::models::open_existing(store).await?;
    let registry = store.registry();
    let version = registry.resolve(name, selector).await?;
    let card = Card {
        manifest: registry.provenance(name, version.version).await?,
        traffic: registry.lineage_stats(name, version.version).await?,
        quality: registry.feedback_summary(name, version.version, None).await?,
        events: registry.events(name, Some(version.version)).await?,
        version,
    };
    match format {
        CardFormat::Json => out!("{}", serde_json::to_string(&card.to_json())?),
        CardFormat::Markdown => out!("{}", card.to_markdown().trim_end()),
    }
    Ok(0)
}

impl Card {
    fn guard_trips(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(|e| GUARD_TRIP_KINDS.contains(&e.kind.as_str()))
    }

    /// Stage, alias and other lifecycle events: every event but the guard trips, which have
    /// their own section.
    fn history(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(|e| !GUARD_TRIP_KINDS.contains(&e.kind.as_str()))
    }

    /// The card as one JSON object. Figures that need traffic or feedback are `null` without it.
    fn to_json(&self) -> Value {
        let v = &self.version;
        let m = self.manifest.as_ref();
        let trips: Vec<Value> = self
            .guard_trips()
            .map(|e| {
                json!({
                    "at": e.at, "kind": e.kind, "actor": e.actor,
                    "reason": e.detail.get("reason"), "to": e.detail.get("to"), "role": e.detail.get("role"),
                    "detail": e.detail,
                })
            })
            .collect();
        json!({
            "model": v.model,
            "version": v.version,
            "stage": v.stage,
            "aliases": v.aliases,
            "registered_at": v.created_at,
            "sha256": v.sha256,
            "size": v.size,
            "description": m.and_then(|m| m.description.as_deref()),
            "intended_use": m.and_then(|m| m.intended_use.as_deref()),
            "signature": v.signature,
            "provenance": m.map(|m| json!({ "training": m.training, "environment": m.environment, "tags": m.tags })),
            "offline_metrics": m.map(|m| &m.metrics).cloned().unwrap_or_default(),
            "traffic": self.traffic,
            "online_quality": self.quality,
            "guard_trips": trips,
            "history": self.history().collect::<Vec<_>>(),
        })
    }

    /// The card as Markdown: a header table, then one section per part.
    fn to_markdown(&self) -> String {
        let v = &self.version;
        let mut md = Markdown::default();
        md.line(format!("# Model card: {} version {}", v.model, v.version));
        md.blank();
        md.table(
            ["Field", "Value"],
            [
                ["Stage".to_owned(), v.stage.to_string()],
                ["Aliases".to_owned(), if v.aliases.is_empty() { "—".to_owned() } else { v.aliases.join(", ") }],
                ["Registered".to_owned(), v.created_at.clone()],
                ["Artifact".to_owned(), format!("sha256 {} ({} bytes)", code(&v.sha256), v.size)],
            ],
        );
        self.intended_use(&mut md);
        self.signature(&mut md);
        self.provenance(&mut md);
        self.offline_metrics(&mut md);
        self.live_figures(&mut md);
        self.online_quality(&mut md);
        self.guard_section(&mut md);
        self.history_section(&mut md);
        md.0
    }

    fn intended_use(&self, md: &mut Markdown) {
        md.heading("Intended use and limits");
        let m = self.manifest.as_ref();
        match m.and_then(|m| m.description.as_deref()) {
            Some(description) => md.line(description),
            None => md.line("_No description recorded._"),
        }
        md.blank();
        match m.and_then(|m| m.intended_use.as_deref()) {
            Some(intended_use) => md.line(format!("**Intended use:** {intended_use}")),
            None => md.line("_No intended use recorded._"),
        }
        md.blank();
    }

    fn signature(&self, md: &mut Markdown) {
        md.heading("Signature");
        let signature = &self.version.signature;
        let rows = signature
            .inputs
            .iter()
            .map(|t| ("input", t))
            .chain(signature.outputs.iter().map(|t| ("output", t)))
            .map(|(role, t)| [role.to_owned(), code(&t.name), t.datatype.clone(), format!("{:?}", t.shape)]);
        md.table(["Tensor", "Name", "Datatype", "Shape"], rows);
        md.line("A dimension of -1 is dynamic (such as the batch).");
        md.blank();
    }

    fn provenance(&self, md: &mut Markdown) {
        md.heading("Provenance");
        let Some(m) = &self.manifest else {
            md.line("_No provenance manifest was registered with this version._");
            md.blank();
            return;
        };
        match &m.training {
            None => {
                md.line("_The manifest records no training run._");
                md.blank();
            }
            Some(t) => {
                let or_dash = |value: Option<String>| value.unwrap_or_else(|| "—".to_owned());
                let features = if t.features.is_empty() {
                    "—".to_owned()
                } else {
                    format!("{}: {}", t.features.len(), t.features.join(", "))
                };
                md.table(
                    ["Training", "Value"],
                    [
                        ["Code commit".to_owned(), or_dash(t.code_commit.as_deref().map(code))],
                        ["Data snapshot".to_owned(), or_dash(t.data_snapshot.as_deref().map(code))],
                        ["Random seed".to_owned(), or_dash(t.random_seed.map(|s| s.to_string()))],
                        ["Features".to_owned(), features],
                    ],
                );
                free_form_table(md, "Hyperparameter", &t.hyperparameters);
            }
        }
        free_form_table(md, "Environment", &m.environment);
        free_form_table(md, "Tag", &m.tags);
    }

    fn offline_metrics(&self, md: &mut Markdown) {
        md.heading("Offline metrics");
        match self.manifest.as_ref().map(|m| &m.metrics).filter(|metrics| !metrics.is_empty()) {
            None => {
                md.line("_No offline metrics recorded._");
                md.blank();
            }
            Some(metrics) => md.table(["Metric", "Value"], metrics.iter().map(|(k, v)| [k.clone(), v.to_string()])),
        }
    }

    fn live_figures(&self, md: &mut Markdown) {
        md.heading("Live traffic");
        let t = &self.traffic;
        let shadows = (t.shadow_runs > 0).then(|| {
            format!("It also ran {} times as a shadow (not counted as traffic: shadows answer nobody).", t.shadow_runs)
        });
        let (Some(p50), Some(p99), Some(error_rate)) = (t.p50_us, t.p99_us, t.error_rate) else {
            md.line("No traffic recorded: no lineage record shows this version answering a request.");
            if let Some(shadows) = shadows {
                md.line(shadows);
            }
            md.blank();
            return;
        };
        let routes: Vec<String> = t.routes.iter().map(|(route, n)| format!("{route} {n}")).collect();
        let span = match (&t.first_at, &t.last_at) {
            (Some(first), Some(last)) => format!("{first} … {last}"),
            _ => "—".to_owned(),
        };
        md.table(
            ["Figure", "Value"],
            [
                ["Requests served".to_owned(), served_text(t.requests, t.client_errors)],
                ["By route".to_owned(), routes.join(", ")],
                ["Latency p50".to_owned(), millis(p50)],
                ["Latency p99".to_owned(), millis(p99)],
                [
                    "Error rate".to_owned(),
                    format!(
                        "{} ({} of {} served with status ≥ 500)",
                        percent(error_rate),
                        t.errors,
                        t.requests - t.client_errors
                    ),
                ],
                ["Served".to_owned(), span],
            ],
        );
        md.line("Latency is the gateway's total time per request (arrival to response), from lineage.");
        if let Some(shadows) = shadows {
            md.line(shadows);
        }
        md.blank();
    }

    fn online_quality(&self, md: &mut Markdown) {
        md.heading("Online quality (feedback)");
        let q = &self.quality;
        if q.count == 0 {
            md.line("No feedback recorded.");
            md.blank();
            return;
        }
        let accuracy = match q.accuracy {
            Some(accuracy) => format!("{} ({} of {} judged right)", percent(accuracy), q.correct, q.judged),
            None => "— (no label or outcome feedback)".to_owned(),
        };
        let error = |value: Option<f64>| match value {
            Some(value) => format!("{value:.4} (over {} values)", q.valued),
            None => "— (no value feedback)".to_owned(),
        };
        md.table(
            ["Figure", "Value"],
            [
                ["Feedback items".to_owned(), q.count.to_string()],
                ["Accuracy".to_owned(), accuracy],
                ["MAE".to_owned(), error(q.mae)],
                ["RMSE".to_owned(), error(q.rmse)],
            ],
        );
    }

    fn guard_section(&self, md: &mut Markdown) {
        md.heading("Guard trips");
        let mut any = false;
        for e in self.guard_trips() {
            any = true;
            let d = &e.detail;
            let reason = d.get("reason").and_then(Value::as_str).unwrap_or("unstated reason");
            let mut text = format!("- {} — {}: {reason}", e.at, e.kind);
            if let Some(reason_text) = d.get("reason_text").and_then(Value::as_str) {
                text.push_str(&format!(" ({reason_text})"));
            }
            if let Some(role) = d.get("role").and_then(Value::as_str) {
                text.push_str(&format!("; as {role}"));
            }
            if let Some(to) = d.get("to").filter(|to| !to.is_null()) {
                let verb = if e.kind == Event::GUARD_TRIP { "traffic moved to" } else { "kept serving" };
                text.push_str(&format!("; {verb} version {to}"));
            }
            md.line(text);
        }
        if !any {
            md.line("None recorded.");
        }
        md.blank();
    }

    fn history_section(&self, md: &mut Markdown) {
        md.heading("Stage and alias history");
        for e in self.history() {
            md.line(format!("- {} — {} ({})", e.at, describe_event(e), e.actor));
        }
        md.blank();
        md.line("An alias moved away from this version is recorded against the version it moved to.");
    }
}

/// One history event for people: `stage staging → production`, `alias champion set`, ….
fn describe_event(e: &Event) -> String {
    let d = &e.detail;
    let text = |key: &str| match d.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "?".to_owned(),
        Some(other) => other.to_string(),
    };
    match e.kind.as_str() {
        Event::REGISTERED => format!("registered (stage {})", text("stage")),
        Event::STAGE_CHANGED => format!("stage {} → {}", text("from"), text("to")),
        Event::ALIAS_SET => match d.get("from").filter(|from| !from.is_null()) {
            Some(from) => format!("alias {} moved here from version {from}", code(&text("alias"))),
            None => format!("alias {} set", code(&text("alias"))),
        },
        Event::ALIAS_REMOVED => format!("alias {} removed", code(&text("alias"))),
        other if d.as_object().is_some_and(|o| o.is_empty()) || d.is_null() => other.to_owned(),
        other => format!("{other} {d}"),
    }
}

/// A free-form manifest table (`key | value`), strings without their JSON quotes; nothing when
/// empty.
fn free_form_table(md: &mut Markdown, title: &str, map: &BTreeMap<String, Value>) {
    if map.is_empty() {
        return;
    }
    let rows = map.iter().map(|(key, value)| {
        let value = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        [key.clone(), value]
    });
    md.table([title, "Value"], rows);
}

/// Microseconds as milliseconds with all three decimals: exact, and readable at a glance.
/// "97", or "97 (and 3 refused as the client's error, 4xx)": refusals are not served requests.
fn served_text(requests: u64, client_errors: u64) -> String {
    let served = requests - client_errors;
    match client_errors {
        0 => served.to_string(),
        n => format!("{served} (and {n} refused as the client's error, 4xx)"),
    }
}

fn millis(us: u64) -> String {
    format!("{}.{:03} ms", us / 1000, us % 1000)
}

/// A ratio as a percentage with two decimals (small error rates must not round to 0%).
fn percent(ratio: f64) -> String {
    format!("{:.2}%", ratio * 100.0)
}

/// `text` as an inline code span, with a fence longer than any backtick run inside it.
fn code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if longest == 0 { format!("{fence}{text}{fence}") } else { format!("{fence} {text} {fence}") }
}

/// A Markdown document being written; every method ends its own lines.
#[derive(Debug, Default)]
struct Markdown(String);

impl Markdown {
    fn line(&mut self, text: impl AsRef<str>) {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }

    fn heading(&mut self, title: &str) {
        self.line(format!("## {title}"));
        self.blank();
    }

    /// A table with a header row, cells escaped so that text from manifests (a `|`, a line
    /// break) cannot break its layout; followed by a blank line.
    fn table<const N: usize>(&mut self, header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) {
        self.line(format!("| {} |", header.join(" | ")));
        self.line(format!("|{}", "---|".repeat(N)));
        for row in rows {
            let cells: Vec<String> =
                row.iter().map(|cell| cell.replace('|', "\\|").replace(['\r', '\n'], " ")).collect();
            self.line(format!("| {} |", cells.join(" | ")));
        }
        self.blank();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_format_exactly() {
        assert_eq!(millis(0), "0.000 ms");
        assert_eq!(millis(1_234), "1.234 ms");
        assert_eq!(millis(90_005), "90.005 ms");
        assert_eq!(percent(0.0005), "0.05%");
        assert_eq!(percent(0.2), "20.00%");
    }

    #[test]
    fn code_spans_survive_backticks_and_cells_survive_pipes() {
        assert_eq!(code("abc"), "`abc`");
        assert_eq!(code("a`b"), "`` a`b ``");
        let mut md = Markdown::default();
        md.table(["k", "v"], [["a|b".to_owned(), "line\nbreak".to_owned()]]);
        assert_eq!(md.0, "| k | v |\n|---|---|\n| a\\|b | line break |\n\n");
    }
}
