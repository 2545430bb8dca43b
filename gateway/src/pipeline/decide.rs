//! Which loaded version answers a request: the pinned one, or the routing table's pick when it
//! is loaded, else the champion, else the first loaded backup.

use std::sync::Arc;

pub use policy::router::Choice;
use policy::router::{Decision, Reason, Route};

use super::{Metadata, PipelineError};
use crate::serving::{LoadedVersion, ServedModel, VersionSlot};

/// The version that answers a request for `model`, and why.
pub(super) fn choose<'a>(
    model: &'a ServedModel,
    pinned: Option<u32>,
    metadata: &impl Metadata,
) -> Result<(Choice, &'a Arc<LoadedVersion>), PipelineError> {
    if let Some(version) = pinned {
        let decision = Decision { version, route: Route::Pinned, reason: Reason::PinnedByPath };
        return Ok((Choice { decision, fell_back: None, note: None }, pinned_version(model, version)?));
    }
    let table = &model.routing;
    let key = table.sticky_header.as_deref().and_then(|h| metadata.get(h));
    let decision = table.pick(key);
    let (decision, fell_back) = if model.ready(decision.version).is_some() {
        (decision, None)
    } else if model.ready(table.champion).is_some() {
        (Decision { version: table.champion, route: Route::Champion, ..decision }, Some(decision.version))
    } else if let Some(&backup) = table.backup.iter().find(|v| model.ready(**v).is_some()) {
        (Decision { version: backup, route: Route::Backup, ..decision }, Some(decision.version))
    } else {
        return Err(PipelineError::NoVersion { model: model.name.clone(), champion: table.champion });
    };
    let loaded = model.ready(decision.version).expect("chosen among loaded versions");
    // Why the routing sends traffic to a backup (a guard trip), for the lineage reason.
    let note = if decision.route == Route::Backup { model.route_note() } else { None };
    Ok((Choice { decision, fell_back, note }, loaded))
}

/// The pinned version: not served (`VersionNotServed`), or configured but failed to load.
fn pinned_version(model: &ServedModel, version: u32) -> Result<&Arc<LoadedVersion>, PipelineError> {
    match model.versions.get(&version) {
        Some(VersionSlot::Ready(loaded)) => Ok(loaded),
        Some(VersionSlot::Failed { reason, .. }) => {
            Err(PipelineError::VersionUnavailable { model: model.name.clone(), version, reason: reason.clone() })
        }
        None => Err(PipelineError::VersionNotServed { model: model.name.clone(), version, loaded: model.names_text() }),
    }
}
