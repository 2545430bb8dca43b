//! Publishes what this gateway serves to the registry (`model_store::ServingClaim`s): after
//! every change of the serving snapshot and on a heartbeat, so that commands which would retire
//! a version (archive it, remove its alias) can see it is live. A registry that cannot be
//! written fails no request: the next heartbeat tries again.

use std::sync::Arc;
use std::time::Duration;

use model_store::ServedVersion;
use tokio::sync::watch;

use super::Control;
use crate::serving::ServingState;

/// How often the claim is renewed; it is valid for three of these, so a replica that dies stops
/// claiming within half a minute.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The versions `state` serves and how.
pub fn served_versions(state: &ServingState) -> Vec<ServedVersion> {
    let mut served = Vec::new();
    for m in state.models.values() {
        let r = &m.routing;
        for loaded in m.ready_versions() {
            let v = loaded.instance.version;
            let mut roles = Vec::new();
            if r.champion == v {
                roles.push(r.champion_route.as_str().to_owned());
            }
            if r.challengers.iter().any(|(c, w)| *c == v && *w > 0) {
                roles.push("challenger".to_owned());
            }
            if r.shadows.iter().any(|(s, _)| *s == v) {
                roles.push("shadow".to_owned());
            }
            if r.backup.contains(&v) {
                roles.push("backup".to_owned());
            }
            if roles.is_empty() {
                roles.push("loaded".to_owned());
            }
            served.push(ServedVersion { model: m.name.clone(), version: v, roles });
        }
    }
    served
}

/// Publishes on every change and every `HEARTBEAT` until `stop`, then withdraws the claim.
pub async fn run(control: Arc<Control>, mut stop: watch::Receiver<bool>) {
    let registry = control.store().registry();
    loop {
        let served = served_versions(&control.snapshot());
        if let Err(e) = registry.publish_serving(control.replica(), &served, 3 * HEARTBEAT).await {
            tracing::warn!(error = %e, "cannot publish what this gateway serves to the registry; retrying");
        }
        tokio::select! {
            () = control.changed.notified() => {}
            () = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.changed() => break,
        }
    }
    if let Err(e) = registry.withdraw_serving(control.replica()).await {
        tracing::warn!(error = %e, "cannot withdraw this gateway's serving claim (it expires by itself)");
    }
}
