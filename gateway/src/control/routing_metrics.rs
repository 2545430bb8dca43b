//! Routing figures: the gauges that say where each model's traffic goes, kept in step with the
//! serving snapshot by the control plane, its only writer.

use std::sync::Arc;

use crate::serving::ServingState;

/// Sets `switchyard_routing_weight_ratio{model,version,route}` for every version the routing of
/// `state` names (champion and challengers: share of requests; shadows: share mirrored; backups:
/// 0), and zeroes the series of `previous` that `state` no longer has.
pub(super) fn export_routing(state: &ServingState, previous: Option<&ServingState>) {
    let series = |s: &ServingState| -> Vec<(String, u32, &'static str, f64)> {
        s.models
            .values()
            .flat_map(|m| {
                let r = &m.routing;
                let ratio = |bp: u32| f64::from(bp) / f64::from(policy::router::TOTAL_BP);
                let name = m.name.clone();
                std::iter::once((name.clone(), r.champion, "champion", ratio(r.champion_weight())))
                    .chain(r.challengers.iter().map(|&(v, w)| (name.clone(), v, "challenger", ratio(w))))
                    .chain(r.shadows.iter().map(|&(v, w)| (name.clone(), v, "shadow", ratio(w))))
                    .chain(r.backup.iter().map(|&v| (name.clone(), v, "backup", 0.0)))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let now = series(state);
    if let Some(prev) = previous {
        for (model, version, route, _) in series(prev) {
            if !now.iter().any(|(m, v, r, _)| *m == model && *v == version && *r == route) {
                metrics::gauge!("switchyard_routing_weight_ratio",
                    "model" => model, "version" => version.to_string(), "route" => route)
                .set(0.0);
            }
        }
    }
    for (model, version, route, ratio) in now {
        if route == "shadow" {
            // Present from the start (at 0), so agreement ratios have a series to divide.
            for agree in ["true", "false"] {
                metrics::counter!("switchyard_shadow_argmax_rows_total",
                    "model" => model.clone(), "version" => version.to_string(), "agree" => agree)
                .increment(0);
            }
        }
        metrics::gauge!("switchyard_routing_weight_ratio", "model" => model, "version" => version.to_string(), "route" => route)
            .set(ratio);
    }
}

/// Zeroes `switchyard_model_info` of the versions `previous` served and `now` does not (or serves
/// as another load). Their sessions stop once the requests holding them finish (the last `Arc`
/// drops).
pub(super) fn retire_versions(previous: &ServingState, now: &ServingState) {
    for (name, model) in &previous.models {
        for loaded in model.ready_versions() {
            let kept = now.models.get(name).and_then(|m| m.ready(loaded.instance.version));
            if kept.is_none_or(|k| !Arc::ptr_eq(k, loaded)) {
                metrics::gauge!("switchyard_model_info", "model" => name.clone(),
                    "version" => loaded.instance.version.to_string(), "sha256" => loaded.instance.sha256.clone(),
                    "stage" => loaded.stage.get().to_string())
                .set(0.0);
            }
        }
    }
}
