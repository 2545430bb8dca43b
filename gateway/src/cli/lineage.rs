//! `switchyard lineage …`: read the per-request lineage records a store holds. `show` answers
//! "how was this request answered?" (the records, the version with its provenance and history,
//! the shadow runs); `query` exports a model's records over a time range as JSON lines.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use clap::Subcommand;
use model_store::{LineageChain, LineageQuery, LineageRecord, Manifest};

/// The lineage verbs. Both only read the store, and refuse a directory that is not one rather
/// than creating an empty store there.
#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Show how one request was answered: its records, the version with its provenance and
    /// events up to the request, and any shadow runs.
    Show {
        /// The request id, as the gateway assigned or received it.
        request_id: String,
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// Print the whole chain as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a model's lineage records, the oldest first: JSON lines (one record per line, the
    /// export format; the default) or a table for people. A model or version the store does not
    /// have is an error (exit 1).
    Query {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// The model name.
        #[arg(long)]
        model: String,
        /// Only records of this version number.
        #[arg(long)]
        version: Option<u32>,
        /// Only records at or after T: RFC 3339 (2026-11-22T10:00:00Z), unix milliseconds, or a
        /// duration before now (15m, 2h, 1d).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only records at or before T (same formats as --since).
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// At most N records (default 1000, at most 100000).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// `jsonl` (one JSON record per line) or `table` (a line per record for people).
        #[arg(long, value_enum, default_value_t = QueryFormat::Jsonl)]
        format: QueryFormat,
        /// Same as --format jsonl (every command's machine output is --json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
}

/// How `lineage query` prints its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    Jsonl,
    Table,
}

/// Runs a lineage verb. Returns the process exit code.
pub fn run(cmd: LineageCommand) -> anyhow::Result<i32> {
    match cmd {
        LineageCommand::Show { request_id, store, json } => super::block_on(show(&store, &request_id, json))?,
        LineageCommand::Query { store, model, version, since, until, limit, format, json } => {
            let format = if json { QueryFormat::Jsonl } else { format };
            // Times are parsed against one clock reading, so `--since 2h --until 1h` is exact.
            let now = SystemTime::now();
            let since_ms = since.as_deref().map(|t| parse_time(t, now)).transpose()?;
            let until_ms = until.as_deref().map(|t| parse_time(t, now)).transpose()?;
            // The store refuses this too, but in milliseconds; here it can name the flags as given.
            if let (Some(since), Some(until), Some(since_ms), Some(until_ms)) = (&since, &until, since_ms, until_ms)
                && since_ms > until_ms
            {
                bail!(
                    "invalid lineage query: --since {since:?} ({}) is after --until {until:?} ({})",
                    describe_ms(since_ms),
                    describe_ms(until_ms)
                );
            }
            let query = LineageQuery { model: Some(model), version, since_ms, until_ms, limit };
            super::block_on(query_records(&store, &query, format))?
        }
    }
}

/// `lineage show`: reads the chain in one snapshot and prints it.
async fn show(store: &Path, request_id: &str, json: bool) -> anyhow::Result<i32> {
    let store = super::models::open_existing(store).await?;
    let registry = store.registry();
    let chain = match registry.lineage_chain(request_id).await {
        Err(model_store::StoreError::LineageNotFound { .. }) if registry.job(request_id).await?.is_some() => {
            return show_job(registry, request_id, json).await;
        }
        other => other?,
    };
    if json {
        out!("{}", serde_json::to_string(&chain)?);
    } else {
        print_chain(&chain);
    }
    Ok(0)
}

/// `lineage show JOB_ID`: a prediction job's chain, as a request's: the job, the version that
/// ran (current stage and aliases), its provenance, and its events up to the job.
async fn show_job(registry: &model_store::Registry, id: &str, json: bool) -> anyhow::Result<i32> {
    let job = registry.job(id).await?.ok_or_else(|| anyhow::anyhow!("no prediction job '{id}'"))?;
    let version = registry.version(&job.model, job.version).await.ok();
    let provenance = registry.provenance(&job.model, job.version).await?;
    let events: Vec<_> =
        registry.events(&job.model, Some(job.version)).await?.into_iter().filter(|e| e.at <= job.started_at).collect();
    if json {
        out!("{}", serde_json::json!({ "job": job, "version": version, "provenance": provenance, "events": events }));
        return Ok(0);
    }
    super::predict::print_job(&job);
    if let Some(m) = &provenance {
        print_manifest(m);
    }
    out!("events:");
    for e in events {
        out!("  {}  {:<16} {}", e.at, e.kind, e.actor);
    }
    Ok(0)
}

/// `lineage query`: the matching records as JSON lines, the export format.
async fn query_records(store: &Path, query: &LineageQuery, format: QueryFormat) -> anyhow::Result<i32> {
    let store = super::models::open_existing(store).await?;
    let registry = store.registry();
    // A name that matches nothing is a mistake to report, not an empty answer.
    if let Some(model) = &query.model {
        match query.version {
            Some(v) => drop(registry.version(model, v).await?),
            None => drop(registry.versions(model).await?),
        }
    }
    let records = registry.query_lineage(query).await?;
    // Up to 100,000 lines: one buffered, locked writer rather than a write per line. A closed
    // stdout (`| head`) ends the output quietly, like `out!`, without formatting the rest.
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    if format == QueryFormat::Table
        && writeln!(
            stdout,
            "{:<29} {:<24} {:>7} {:<10} {:>6} {:>10}  reason",
            "at", "request id", "version", "route", "status", "total ms"
        )
        .is_err()
    {
        return Ok(0);
    }
    for record in &records {
        let line = match format {
            QueryFormat::Jsonl => serde_json::to_string(record)?,
            QueryFormat::Table => format!(
                "{:<29} {:<24} {:>7} {:<10} {:>6} {:>10.3}  {}",
                record.at,
                record.request_id,
                record.version,
                record.route,
                record.status,
                record.total_us as f64 / 1000.0,
                record.reason
            ),
        };
        if writeln!(stdout, "{line}").is_err() {
            return Ok(0);
        }
    }
    let _ = stdout.flush();
    Ok(0)
}

/// The human form of `lineage show`: the answering run(s), the version, its provenance, its
/// events up to the request, then the shadow runs.
fn print_chain(chain: &LineageChain) {
    let (shadows, primaries): (Vec<&LineageRecord>, Vec<&LineageRecord>) =
        chain.records.iter().partition(|r| r.is_shadow());
    for (i, record) in primaries.iter().enumerate() {
        if i > 0 {
            out!("");
        }
        print_record(record);
    }
    let Some(primary) = primaries.first().or(shadows.first()) else {
        return;
    };
    match &chain.version {
        None => out!("version:     {}:{} is no longer in the registry", primary.model, primary.version),
        Some(v) => {
            out!("version:");
            out!("  stage:      {}", v.stage);
            out!("  aliases:    {}", if v.aliases.is_empty() { "-".to_owned() } else { v.aliases.join(", ") });
            out!("  registered: {}", v.created_at);
            if v.sha256 != primary.sha256 {
                // Records are written without looking the version up; say so if they disagree.
                out!("  sha256:     {} (differs from the record's)", v.sha256);
            }
        }
    }
    match &chain.provenance {
        None if chain.version.is_some() => out!("provenance:  none recorded"),
        None => {}
        Some(manifest) => print_manifest(manifest),
    }
    if chain.version.is_some() {
        out!("events (up to the request):");
        if chain.events.is_empty() {
            out!("  -");
        }
        for e in &chain.events {
            out!("  {}  {:<14} {:<16} {}", e.at, e.kind, e.actor, e.detail);
        }
    }
    if !shadows.is_empty() {
        out!("shadow runs:");
        for s in shadows {
            let of = s.shadow_of.map(|v| format!(" (shadowing version {v})")).unwrap_or_default();
            out!("  {}:{}{}", s.model, s.version, of);
            out!("    sha256:     {}", s.sha256);
            out!("    at:         {}", s.at);
            out!("    status:     {}", status_text(s));
            out!("    timings:    {}", timings_text(s));
            match &s.comparison {
                Some(comparison) => out!("    comparison: {comparison}"),
                None => out!("    comparison: -"),
            }
        }
    }
}

/// One answering run, field per line.
fn print_record(r: &LineageRecord) {
    out!("request:     {}", r.request_id);
    out!("at:          {}", r.at);
    out!("model:       {}:{}", r.model, r.version);
    out!("sha256:      {}", r.sha256);
    out!("route:       {} ({})", r.route, r.reason);
    if let Some(hash) = &r.sticky_key_hash {
        out!("sticky key:  {hash} (hash)");
    }
    if let Some(input) = &r.input_sha256 {
        out!("input:       sha256 {input}");
    }
    out!("status:      {}", status_text(r));
    out!("timings:     {}", timings_text(r));
}

/// `200`, or `503 (timeout)` when the run ended in an error class.
fn status_text(r: &LineageRecord) -> String {
    match &r.error_class {
        Some(class) => format!("{} ({class})", r.status),
        None => r.status.to_string(),
    }
}

fn timings_text(r: &LineageRecord) -> String {
    format!("queue {} µs, compute {} µs, total {} µs", r.queue_us, r.compute_us, r.total_us)
}

/// The provenance manifest, every field it has, labelled.
fn print_manifest(m: &Manifest) {
    out!("provenance:");
    if let Some(description) = &m.description {
        out!("  description:     {description}");
    }
    if let Some(intended_use) = &m.intended_use {
        out!("  intended use:    {intended_use}");
    }
    if let Some(t) = &m.training {
        out!("  code commit:     {}", t.code_commit.as_deref().unwrap_or("-"));
        out!("  data snapshot:   {}", t.data_snapshot.as_deref().unwrap_or("-"));
        out!("  random seed:     {}", t.random_seed.map(|s| s.to_string()).unwrap_or_else(|| "-".to_owned()));
        if !t.features.is_empty() {
            out!("  features:        {} ({})", t.features.join(", "), t.features.len());
        }
        print_map("hyperparameters", &t.hyperparameters);
    }
    print_map("environment", &m.environment);
    if !m.metrics.is_empty() {
        out!("  offline metrics:");
        for (name, value) in &m.metrics {
            out!("    {name} = {value}");
        }
    }
    print_map("tags", &m.tags);
}

/// A free-form manifest table as `key = value` lines; strings without their JSON quotes.
fn print_map(title: &str, map: &BTreeMap<String, serde_json::Value>) {
    if map.is_empty() {
        return;
    }
    out!("  {title}:");
    for (key, value) in map {
        match value {
            serde_json::Value::String(text) => out!("    {key} = {text}"),
            other => out!("    {key} = {other}"),
        }
    }
}

/// What `--since` / `--until` accept, for error messages.
const TIME_FORMATS: &str = "expected RFC 3339 (2026-11-22T10:00:00Z, 2026-11-22T10:00:00.250+02:00), \
     unix milliseconds (1795341600000), or a duration before now (15m, 2h, 1d)";

/// Parses a `--since` / `--until` value to unix milliseconds: an integer is unix milliseconds,
/// text with a unit is a duration before `now`, anything else RFC 3339. Before 1970 is allowed
/// (negative), so `--since 100y` simply matches everything.
pub(super) fn parse_time(text: &str, now: SystemTime) -> anyhow::Result<i64> {
    let text = text.trim();
    let refuse = |why: String| anyhow!("invalid time {text:?}: {why}; {TIME_FORMATS}");
    if text.is_empty() {
        return Err(refuse("it is empty".to_owned()));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().map_err(|e| refuse(format!("as unix milliseconds: {e}")));
    }
    // RFC 3339 dates start with four digits and a dash; durations never do.
    if text.len() >= 5 && text.as_bytes()[4] == b'-' && text.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return parse_rfc3339_ms(text).map_err(refuse);
    }
    let ago = humantime::parse_duration(text).map_err(|e| refuse(format!("as a duration: {e}")))?;
    Ok(ms_since_epoch(now).saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)))
}

/// RFC 3339 to unix milliseconds (truncated, as the store's timestamps are). humantime reads
/// UTC only, so a `±HH:MM` offset is split off here and applied; no offset means UTC.
fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    let (local, offset_ms) = split_offset(text)?;
    let utc = humantime::parse_rfc3339_weak(local).map_err(|e| format!("as RFC 3339: {e}"))?;
    Ok(ms_since_epoch(utc) - offset_ms)
}

/// Splits a trailing `+HH:MM` / `-HH:MM` offset off an RFC 3339 time: the rest and the offset
/// in milliseconds (positive east of UTC). No offset, or `Z`: the text as is and 0.
fn split_offset(text: &str) -> Result<(&str, i64), String> {
    let bytes = text.as_bytes();
    // `2026-11-22T10:00:00` is 19 bytes; an offset is the last 6 after it.
    if bytes.len() < 25 {
        return Ok((text, 0));
    }
    let at = bytes.len() - 6;
    let sign = match bytes[at] {
        b'+' => 1,
        b'-' => -1,
        _ => return Ok((text, 0)),
    };
    let field = |range: std::ops::Range<usize>| {
        text.get(range).filter(|s| s.bytes().all(|b| b.is_ascii_digit())).and_then(|s| s.parse::<i64>().ok())
    };
    let (Some(hours), b':', Some(minutes)) = (field(at + 1..at + 3), bytes[at + 3], field(at + 4..at + 6)) else {
        return Err(format!("bad UTC offset {:?}", &text[at..]));
    };
    if hours > 23 || minutes > 59 {
        return Err(format!("UTC offset {:?} is out of range", &text[at..]));
    }
    let local = &text[..at];
    if local.ends_with(['Z', 'z']) {
        return Err("both Z and a UTC offset".to_owned());
    }
    Ok((local, sign * (hours * 3_600_000 + minutes * 60_000)))
}

/// Unix milliseconds as RFC 3339 UTC for messages; before 1970 as the number itself.
fn describe_ms(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(after) => humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(after)).to_string(),
        Err(_) => format!("{ms} ms since 1970"),
    }
}

/// Unix milliseconds of a moment; negative before 1970.
fn ms_since_epoch(moment: SystemTime) -> i64 {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match moment.duration_since(UNIX_EPOCH) {
        Ok(after) => ms(after),
        Err(before) => -ms(before.duration()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T10:00:00Z in unix milliseconds.
    const TEN_AM: i64 = 1_795_341_600_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(TEN_AM as u64)
    }

    #[test]
    fn rfc3339_utc_with_and_without_fraction() {
        assert_eq!(parse_time("2026-11-22T10:00:00Z", now()).unwrap(), TEN_AM);
        assert_eq!(parse_time("2026-11-22T10:00:00.250Z", now()).unwrap(), TEN_AM + 250);
        // Sub-millisecond digits are truncated, as the store's timestamps are.
        assert_eq!(parse_time("2026-11-22T10:00:00.123456789Z", now()).unwrap(), TEN_AM + 123);
        assert_eq!(parse_time("2026-11-22T10:00:00+00:00", now()).unwrap(), TEN_AM);
        // No offset means UTC.
        assert_eq!(parse_time("2026-11-22T10:00:00", now()).unwrap(), TEN_AM);
        assert_eq!(parse_time("  2026-11-22T10:00:00Z ", now()).unwrap(), TEN_AM);
    }

    #[test]
    fn rfc3339_offsets_are_applied() {
        assert_eq!(parse_time("2026-11-22T12:00:00+02:00", now()).unwrap(), TEN_AM);
        assert_eq!(parse_time("2026-11-22T04:30:00-05:30", now()).unwrap(), TEN_AM);
        assert_eq!(parse_time("2026-11-22T12:00:00.500+02:00", now()).unwrap(), TEN_AM + 500);
        assert_eq!(parse_time("2026-11-22T10:00:00-00:00", now()).unwrap(), TEN_AM);
        // Before 1970 once the offset is applied: negative, not an error.
        assert_eq!(parse_time("1970-01-01T00:00:00+01:00", now()).unwrap(), -3_600_000);
    }

    #[test]
    fn integers_are_unix_milliseconds() {
        assert_eq!(parse_time("1795341600000", now()).unwrap(), TEN_AM);
        assert_eq!(parse_time("0", now()).unwrap(), 0);
    }

    #[test]
    fn durations_are_before_now() {
        assert_eq!(parse_time("15m", now()).unwrap(), TEN_AM - 15 * 60_000);
        assert_eq!(parse_time("2h", now()).unwrap(), TEN_AM - 2 * 3_600_000);
        assert_eq!(parse_time("1d", now()).unwrap(), TEN_AM - 86_400_000);
        assert_eq!(parse_time("1h 30m", now()).unwrap(), TEN_AM - 90 * 60_000);
        assert_eq!(parse_time("500ms", now()).unwrap(), TEN_AM - 500);
        // Further back than 1970 is fine: it matches everything.
        assert!(parse_time("100y", now()).unwrap() < 0);
    }

    #[test]
    fn messages_show_milliseconds_as_rfc3339() {
        assert_eq!(describe_ms(TEN_AM + 5), "2026-11-22T10:00:00.005Z");
        assert_eq!(describe_ms(-1), "-1 ms since 1970");
    }

    #[test]
    fn garbage_is_refused_with_the_accepted_formats() {
        for bad in [
            "",
            "   ",
            "yesterday",
            "15 parsecs",
            "-5m",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "2026-11-22T25:00:00Z",
            "2026-11-22T10:00:00+2:00",
            "2026-11-22T10:00:00+24:00",
            "2026-11-22T10:00:00++5:00",
            "2026-11-22T10:00:00Z+02:00",
            "2026-11-22T10:00:00 UTC",
            "99999999999999999999",
        ] {
            let message = parse_time(bad, now()).expect_err(bad).to_string();
            assert!(message.contains("RFC 3339"), "{bad:?}: {message}");
            assert!(message.contains("unix milliseconds"), "{bad:?}: {message}");
            assert!(message.contains("15m"), "{bad:?}: {message}");
        }
    }
}
