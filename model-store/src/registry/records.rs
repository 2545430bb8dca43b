//! What the registry hands out: version records, model summaries, events and stages, plus the
//! timestamp format they are stored in.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::signature::Signature;

/// One registered version of a model.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    /// Model name.
    pub model: String,
    /// Version number: 1, 2, 3, … per model, never reused.
    pub version: u32,
    /// Lowercase hex sha256 of the artifact bytes; names the artifact in the store.
    pub sha256: String,
    /// Artifact size in bytes.
    pub size: u64,
    /// Input and output tensors recorded at registration.
    pub signature: Signature,
    /// Where a remote version is answered (its artifact is this, as a descriptor); `None` for
    /// a model file the gateway runs. Left out of JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<crate::Upstream>,
    /// Lifecycle stage.
    pub stage: Stage,
    /// When it was registered, RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// Aliases that point at this version, sorted.
    pub aliases: Vec<String>,
    /// When `models gc` removed its artifact (RFC 3339 UTC with milliseconds); `None` while the
    /// artifact is stored. A collected version keeps its record, provenance and history but can
    /// no longer be loaded. Left out of JSON when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
}

/// Lifecycle stage of a version. New versions start in `Staging`. The registry moves a version
/// only when asked: promoting one version does not demote another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Registered, not yet serving production traffic.
    Staging,
    /// Approved for production traffic.
    Production,
    /// Retired; kept for lineage and rollback.
    Archived,
}

/// A stage name that is not `staging`, `production` or `archived`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage `{value}`: valid stages are staging, production, archived")]
pub struct ParseStageError {
    /// The refused text.
    pub value: String,
}

/// One registered model, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// How many versions are registered.
    pub versions: u32,
    /// Highest version number.
    pub latest: u32,
    /// When its first version was registered, RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// Alias name → version number.
    pub aliases: BTreeMap<String, u32>,
}

/// One entry of a model's append-only history.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Increasing id; events of one registry sort by it in the order they were committed.
    pub id: i64,
    /// Model name.
    pub model: String,
    /// The version concerned; `None` for model-level events.
    pub version: Option<u32>,
    /// What happened: one of the `Event::*` kinds, or any kind given to `record_event`.
    pub kind: String,
    /// Kind-specific detail, e.g. `{"from":"staging","to":"production"}` for a stage change or
    /// `{"alias":"champion","from":1,"to":2}` for an alias move.
    pub detail: serde_json::Value,
    /// Who did it (user, service or component name).
    pub actor: String,
    /// When, RFC 3339 UTC with milliseconds.
    pub at: String,
}

/// A moment as the registry stores it: RFC 3339 text for people, unix milliseconds for ordering.
#[derive(Debug, Clone)]
pub(crate) struct Timestamp {
    /// RFC 3339, UTC, millisecond precision: `2024-05-02T10:30:00.123Z`.
    pub(crate) text: String,
    /// Milliseconds since the unix epoch, the same instant as `text`.
    pub(crate) ms: i64,
}

impl Stage {
    /// Every stage, in lifecycle order.
    pub const ALL: [Stage; 3] = [Stage::Staging, Stage::Production, Stage::Archived];

    /// The lowercase name stored and shown: `staging`, `production` or `archived`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Staging => "staging",
            Stage::Production => "production",
            Stage::Archived => "archived",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = ParseStageError;

    /// Parses `staging`, `production` or `archived` (lowercase only, as stored).
    fn from_str(s: &str) -> Result<Stage, ParseStageError> {
        Stage::ALL.into_iter().find(|stage| stage.as_str() == s).ok_or_else(|| ParseStageError { value: s.to_owned() })
    }
}

impl Event {
    /// A version was registered; detail `{"sha256", "size", "stage"}`.
    pub const REGISTERED: &'static str = "registered";
    /// A version changed stage; detail `{"from", "to"}`.
    pub const STAGE_CHANGED: &'static str = "stage_changed";
    /// An alias was created or moved; detail `{"alias", "from" (null if new), "to"}`.
    pub const ALIAS_SET: &'static str = "alias_set";
    /// An alias was removed; detail `{"alias", "from"}`.
    pub const ALIAS_REMOVED: &'static str = "alias_removed";
    /// Garbage collection removed the version's artifact; detail `{"sha256", "size",
    /// "archived_at", "retention", "retention_s"}`. Recorded in the transaction that marks the
    /// version collected; the file is removed after it commits.
    pub const ARTIFACT_COLLECTED: &'static str = "artifact_collected";
    /// The bytes of a collected version were registered again, so its artifact is stored and
    /// loadable once more; detail `{"sha256", "size", "collected_at"}`.
    pub const ARTIFACT_RESTORED: &'static str = "artifact_restored";

    // Written by the gateway's control plane (detail: what changed, with its evidence).

    /// The guard moved a model's traffic away from a breaching version; detail `{"model",
    /// "from", "to", "role", "reason", "reason_text", "measured", "thresholds"}`.
    pub const GUARD_TRIP: &'static str = "guard_trip";
    /// The champion breaches and no backup is healthy: the least bad version keeps serving;
    /// detail as `GUARD_TRIP`, with `"no_healthy_backup": true`.
    pub const GUARD_NO_HEALTHY_BACKUP: &'static str = "guard_no_healthy_backup";
    /// A shadow breaches its guard (routing unchanged); detail as `GUARD_TRIP`.
    pub const GUARD_SHADOW_BREACH: &'static str = "guard_shadow_breach";
    /// An operator made a version the champion; detail `{"from", "to", "evidence"}`.
    pub const PROMOTED: &'static str = "promoted";
    /// An operator put the previous champion back; detail `{"from", "to"}`.
    pub const ROLLED_BACK: &'static str = "rolled_back";
    /// An operator replaced the challengers' weights; detail `{"from", "to"}` (percentages).
    pub const WEIGHTS_SET: &'static str = "weights_set";
    /// An operator put the model back on its configured routing; detail `{"from", "origin"}`.
    pub const ROUTING_RESET: &'static str = "routing_reset";
    /// A stored routing override no longer applies because the configured routing changed;
    /// detail `{"reason", "override_event_id"}`.
    pub const ROUTING_OVERRIDE_CLEARED: &'static str = "routing_override_cleared";
    /// `switchyard feedback export --output` wrote a data set; detail `{"file", "rows",
    /// "sha256", "query"}`, so a manifest can cite it as its data snapshot.
    pub const FEEDBACK_EXPORTED: &'static str = "feedback_exported";
}

impl Timestamp {
    /// Now, truncated to the millisecond.
    pub(crate) fn now() -> Timestamp {
        Timestamp::at(SystemTime::now())
    }

    /// `moment`, truncated to the millisecond and clamped to 1970-01-01 … 9999-12-31 (RFC 3339's
    /// four-digit years). A clock outside that is a broken host; clamping beats failing a write.
    pub(crate) fn at(moment: SystemTime) -> Timestamp {
        let since_epoch = moment.duration_since(UNIX_EPOCH).unwrap_or_default();
        let ms = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX).min(Timestamp::MAX_MS);
        let truncated = UNIX_EPOCH + Duration::from_millis(ms);
        Timestamp {
            text: humantime::format_rfc3339_millis(truncated).to_string(),
            ms: i64::try_from(ms).expect("MAX_MS fits in i64"),
        }
    }

    /// 9999-12-31T23:59:59.999Z, the last instant `humantime` can format.
    const MAX_MS: u64 = 253_402_300_799_999;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_text_round_trips_and_errors_list_valid_values() {
        for stage in Stage::ALL {
            assert_eq!(stage.to_string().parse::<Stage>(), Ok(stage));
            assert_eq!(serde_json::to_value(stage).expect("serialize"), serde_json::json!(stage.as_str()));
        }
        let err = "Production".parse::<Stage>().expect_err("case matters");
        let message = err.to_string();
        assert!(message.contains("`Production`") && message.contains("staging, production, archived"), "{message}");
    }

    #[test]
    fn timestamps_are_rfc3339_millis_utc_and_agree_with_ms() {
        let stamp = Timestamp::now();
        assert_eq!(stamp.text.len(), "2024-05-02T10:30:00.123Z".len(), "{}", stamp.text);
        assert!(stamp.text.ends_with('Z'));
        let parsed = humantime::parse_rfc3339(&stamp.text).expect("parses");
        let ms = parsed.duration_since(UNIX_EPOCH).expect("after epoch").as_millis();
        assert_eq!(ms, u128::try_from(stamp.ms).expect("positive"));
    }

    #[test]
    fn timestamps_of_given_moments_truncate_and_clamp() {
        let moment = UNIX_EPOCH + Duration::from_micros(1_714_645_800_123_999);
        let stamp = Timestamp::at(moment);
        assert_eq!((stamp.text.as_str(), stamp.ms), ("2024-05-02T10:30:00.123Z", 1_714_645_800_123));
        let before = Timestamp::at(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!((before.text.as_str(), before.ms), ("1970-01-01T00:00:00.000Z", 0));
        let far = Timestamp::at(UNIX_EPOCH + Duration::from_secs(400_000_000_000));
        assert_eq!(far.text, "9999-12-31T23:59:59.999Z");
        assert_eq!(far.ms, 253_402_300_799_999);
    }
}
