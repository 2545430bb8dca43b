//! Routing overrides: the routing a gateway serves instead of its config's, after a guard trip
//! or an operator action, kept so that a restart serves the same. One per model; every change
//! is written together with the event that explains it.

use serde::{Deserialize, Serialize};

use super::queries::{self, OverrideRow};
use super::{
    Conn, ModelRow, Registry, Timestamp, append_event, find_model, find_version, parse_stage, refuse_collected,
};
use crate::error::StoreError;
use crate::registry::{Event, Stage};

/// The `champion` alias and the stages that follow a change of who serves as champion, written
/// in the same transaction as the routing change: `version` gets the alias and `production`;
/// `demote`, when it was `production`, goes back to `staging`. Each move is an event of its own
/// (`alias_set`, `stage_changed`), written only when something changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChampionMove {
    pub version: u32,
    pub demote: Option<u32>,
}

/// The alias the champion move keeps on the champion.
pub const CHAMPION_ALIAS: &str = "champion";

/// A model's routing override as stored. The registry keeps `routing` and `origin` as opaque
/// JSON: their shape belongs to the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingOverride {
    pub model: String,
    /// Fingerprint of the model's configured routing when the override was made.
    pub config_fingerprint: String,
    /// The routing served instead of the config's.
    pub routing: serde_json::Value,
    /// Why (guard trip, operator action), with the evidence.
    pub origin: serde_json::Value,
    /// When it was made (RFC 3339 UTC, milliseconds).
    pub at: String,
    /// The event recorded with it.
    pub event_id: i64,
}

/// The event to record with an override change.
#[derive(Debug, Clone)]
pub struct EventSpec<'a> {
    /// The version the event is about, if any (e.g. the version a trip moved away from).
    pub version: Option<u32>,
    pub kind: &'a str,
    pub detail: serde_json::Value,
    pub actor: &'a str,
}

impl Registry {
    /// The model's routing override, if one is stored. `ModelNotFound` if the model is absent.
    pub async fn routing_override(&self, model: &str) -> Result<Option<RoutingOverride>, StoreError> {
        let mut tx = self.begin_read().await?;
        let model_row = find_model(&mut tx, model).await?;
        let row = queries::routing_override(&mut tx, model_row.id).await?;
        tx.commit().await?;
        row.map(|r| from_row(&model_row.name, r)).transpose()
    }

    /// Stores (replacing any) the model's override and records `event`, and moves the champion
    /// alias and stages when `champion` says so, in one transaction. Returns the stored override.
    /// `ModelNotFound` / `VersionNotFound` as `record_event`; `ArtifactCollected` for a champion
    /// whose artifact is gone. Nothing is written on an error.
    pub async fn put_routing_override(
        &self,
        model: &str,
        config_fingerprint: &str,
        routing: serde_json::Value,
        origin: serde_json::Value,
        event: EventSpec<'_>,
        champion: Option<ChampionMove>,
    ) -> Result<(RoutingOverride, Event), StoreError> {
        let mut tx = self.begin_write().await?;
        let model_row = find_model(&mut tx, model).await?;
        if let Some(number) = event.version {
            super::find_version(&mut tx, &model_row, number).await?;
        }
        let now = Timestamp::now();
        if let Some(mv) = champion {
            move_champion(&mut tx, &model_row, mv, event.actor, &now).await?;
        }
        let event =
            append_event(&mut tx, &model_row, event.version, event.kind, event.detail, event.actor, &now).await?;
        let row = OverrideRow {
            config_fingerprint: config_fingerprint.to_owned(),
            routing_json: routing.to_string(),
            origin_json: origin.to_string(),
            at: now.text.clone(),
            event_id: event.id,
        };
        queries::put_routing_override(&mut tx, model_row.id, &row).await?;
        tx.commit().await?;
        let stored = RoutingOverride {
            model: model_row.name,
            config_fingerprint: row.config_fingerprint,
            routing,
            origin,
            at: row.at,
            event_id: event.id,
        };
        Ok((stored, event))
    }

    /// Removes the model's override and records `event`, and moves the champion alias and
    /// stages when `champion` says so, in one transaction. Returns whether there was an override;
    /// with none, nothing is written (no event, no move either).
    pub async fn clear_routing_override(
        &self,
        model: &str,
        event: EventSpec<'_>,
        champion: Option<ChampionMove>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let model_row = find_model(&mut tx, model).await?;
        if queries::delete_routing_override(&mut tx, model_row.id).await? == 0 {
            return Ok(false);
        }
        let now = Timestamp::now();
        if let Some(mv) = champion {
            move_champion(&mut tx, &model_row, mv, event.actor, &now).await?;
        }
        append_event(&mut tx, &model_row, event.version, event.kind, event.detail, event.actor, &now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Applies `mv` inside the caller's transaction (see `ChampionMove`).
async fn move_champion(
    conn: &mut Conn,
    model: &ModelRow,
    mv: ChampionMove,
    actor: &str,
    now: &Timestamp,
) -> Result<(), StoreError> {
    let row = find_version(conn, model, mv.version).await?;
    refuse_collected(&row, &model.name, mv.version)?;
    let from = match queries::alias_target(conn, model.id, CHAMPION_ALIAS).await? {
        Some(previous) => Some(super::to_u32(previous.number, "version number")?),
        None => None,
    };
    if from != Some(mv.version) {
        queries::upsert_alias(conn, model.id, CHAMPION_ALIAS, row.id, now).await?;
        let detail = serde_json::json!({ "alias": CHAMPION_ALIAS, "from": from, "to": mv.version });
        append_event(conn, model, Some(mv.version), Event::ALIAS_SET, detail, actor, now).await?;
    }
    set_stage_if(conn, model, mv.version, |_| true, Stage::Production, actor, now).await?;
    if let Some(demoted) = mv.demote.filter(|d| *d != mv.version) {
        set_stage_if(conn, model, demoted, |s| s == Stage::Production, Stage::Staging, actor, now).await?;
    }
    Ok(())
}

/// Moves `version` to `to` when its stage passes `when` and differs from `to`, with its event.
async fn set_stage_if(
    conn: &mut Conn,
    model: &ModelRow,
    version: u32,
    when: impl Fn(Stage) -> bool,
    to: Stage,
    actor: &str,
    now: &Timestamp,
) -> Result<(), StoreError> {
    let row = find_version(conn, model, version).await?;
    let from = parse_stage(&row.stage)?;
    if from == to || !when(from) {
        return Ok(());
    }
    queries::update_stage(conn, row.id, to.as_str()).await?;
    let detail = serde_json::json!({ "from": from, "to": to });
    append_event(conn, model, Some(version), Event::STAGE_CHANGED, detail, actor, now).await?;
    Ok(())
}

fn from_row(model: &str, row: OverrideRow) -> Result<RoutingOverride, StoreError> {
    let json = |text: &str, what: &str| {
        serde_json::from_str(text)
            .map_err(|e| StoreError::decode(format!("routing override {what} of model '{model}': {e}")))
    };
    Ok(RoutingOverride {
        model: model.to_owned(),
        config_fingerprint: row.config_fingerprint,
        routing: json(&row.routing_json, "routing")?,
        origin: json(&row.origin_json, "origin")?,
        at: row.at,
        event_id: row.event_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tests::{register, temp_store};

    async fn store_with_versions(model: &str, n: u8) -> (tempfile::TempDir, crate::ModelStore) {
        let (dir, store) = temp_store().await;
        for i in 0..n {
            register(&store, model, &[b'v', i]).await;
        }
        (dir, store)
    }

    #[tokio::test]
    async fn put_replace_read_and_clear_with_events() {
        let (_dir, store) = store_with_versions("m", 2).await;
        let reg = store.registry();
        assert_eq!(reg.routing_override("m").await.expect("read"), None);
        let spec =
            |kind: &'static str| EventSpec { version: Some(1), kind, detail: json!({"k": kind}), actor: "guard" };
        let (o, e) = reg
            .put_routing_override(
                "m",
                "fp1",
                json!({"champion": 2}),
                json!({"kind": "guard_trip"}),
                spec("guard_trip"),
                None,
            )
            .await
            .expect("put");
        assert_eq!(o.event_id, e.id);
        assert_eq!(reg.routing_override("m").await.expect("read"), Some(o.clone()));
        let (o2, _) = reg
            .put_routing_override(
                "m",
                "fp2",
                json!({"champion": 1}),
                json!({"kind": "operator"}),
                spec("promoted"),
                None,
            )
            .await
            .expect("replace");
        assert_eq!(reg.routing_override("m").await.expect("read").expect("some").config_fingerprint, "fp2");
        assert_ne!(o2.event_id, o.event_id);
        assert!(reg.clear_routing_override("m", spec("routing_reset"), None).await.expect("clear"));
        assert!(!reg.clear_routing_override("m", spec("routing_reset"), None).await.expect("clear again"));
        assert_eq!(reg.routing_override("m").await.expect("read"), None);
        let kinds: Vec<String> = reg.events("m", None).await.expect("events").into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds.iter().filter(|k| *k == "routing_reset").count(), 1, "{kinds:?}");
        assert!(kinds.contains(&"guard_trip".to_owned()) && kinds.contains(&"promoted".to_owned()));
    }

    #[tokio::test]
    async fn a_champion_move_goes_with_the_override_in_one_transaction() {
        let (_dir, store) = store_with_versions("m", 3).await;
        let reg = store.registry();
        let spec = || EventSpec { version: Some(2), kind: "promoted", detail: json!({}), actor: "alice" };
        let first = Some(ChampionMove { version: 1, demote: None });
        reg.put_routing_override("m", "fp", json!({}), json!({}), spec(), first).await.expect("put");
        let mv = Some(ChampionMove { version: 2, demote: Some(1) });
        reg.put_routing_override("m", "fp", json!({}), json!({}), spec(), mv).await.expect("put");
        assert_eq!(reg.resolve("m", "champion").await.expect("alias").version, 2);
        assert_eq!(reg.version("m", 2).await.expect("v2").stage, Stage::Production);
        assert_eq!(reg.version("m", 1).await.expect("v1").stage, Stage::Staging, "the old champion steps down");
        // A move onto a version that does not exist writes nothing at all, override included.
        let bad = Some(ChampionMove { version: 9, demote: Some(2) });
        let err = reg.put_routing_override("m", "other", json!({}), json!({}), spec(), bad).await.unwrap_err();
        assert!(matches!(err, StoreError::VersionNotFound { version: 9, .. }), "{err}");
        assert_eq!(reg.routing_override("m").await.expect("read").expect("kept").config_fingerprint, "fp");
        // Back to version 1 with the reset: alias and stages follow, with their events.
        let reset = EventSpec { version: None, kind: "routing_reset", detail: json!({}), actor: "bob" };
        let back = Some(ChampionMove { version: 1, demote: Some(2) });
        assert!(reg.clear_routing_override("m", reset, back).await.expect("clear"));
        assert_eq!(reg.resolve("m", "champion").await.expect("alias").version, 1);
        assert_eq!(reg.version("m", 2).await.expect("v2").stage, Stage::Staging);
        let events = reg.events("m", None).await.expect("events");
        let moves = events.iter().filter(|e| e.kind == Event::ALIAS_SET && e.actor == "bob").count();
        assert_eq!(moves, 1);
    }

    #[tokio::test]
    async fn refuses_unknown_model_or_version_and_writes_nothing() {
        let (_dir, store) = store_with_versions("m", 1).await;
        let reg = store.registry();
        let spec = EventSpec { version: Some(9), kind: "guard_trip", detail: json!({}), actor: "guard" };
        let err = reg.put_routing_override("m", "fp", json!({}), json!({}), spec.clone(), None).await.unwrap_err();
        assert!(matches!(err, StoreError::VersionNotFound { .. }), "{err}");
        assert_eq!(reg.routing_override("m").await.expect("read"), None);
        let err = reg.routing_override("nope").await.unwrap_err();
        assert!(matches!(err, StoreError::ModelNotFound { .. }), "{err}");
    }
}
