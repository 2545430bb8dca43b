//! Routing table: maps a request to one loaded version of a model (champion, weighted
//! challengers, sticky keys) and picks the shadows that get a mirrored copy. Rebuilt whole on
//! reload or guard action, never mutated in place.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Weights are percentages with two decimals: 10_000 basis points make 100 %.
pub const TOTAL_BP: u32 = 10_000;

/// Why a request went where it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Champion,
    Challenger,
    Backup,
    Pinned,
    Shadow,
}

impl Route {
    /// The label used in headers, metrics and lineage.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Champion => "champion",
            Route::Challenger => "challenger",
            Route::Backup => "backup",
            Route::Pinned => "pinned",
            Route::Shadow => "shadow",
        }
    }
}

/// How the version was chosen, for lineage ("weight bucket 37 of 100", "sticky key 9f2c…").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Random draw landed in this basis-point bucket of 10,000.
    WeightBucket(u32),
    /// Rendezvous hash of the sticky key (the key's own hash, never the key).
    StickyKey(u64),
    /// The path named the version.
    PinnedByPath,
}

/// The routing decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub version: u32,
    pub route: Route,
    pub reason: Reason,
}

/// Why a request's version was chosen, whole: the routing decision, the version first chosen
/// when it was not loaded (`fell_back`), and why the routing sends traffic to a backup (`note`,
/// e.g. "after guard trip of version 1 (p99 212.4 ms > 50 ms over 40 requests)"). The one place
/// the reason text of lineage is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub decision: Decision,
    pub fell_back: Option<u32>,
    pub note: Option<String>,
}

impl Choice {
    /// The `reason` text for people reading lineage.
    pub fn reason_text(&self) -> String {
        let base = match self.decision.reason {
            Reason::WeightBucket(b) => format!("weight bucket {b} of {TOTAL_BP}"),
            Reason::StickyKey(h) => format!("sticky key {h:016x}"),
            Reason::PinnedByPath => "pinned by path".to_owned(),
        };
        match (self.decision.route, self.fell_back, self.note.as_deref()) {
            (Route::Backup, Some(chosen), _) => format!("backup: version {chosen} was not loaded ({base})"),
            (_, Some(chosen), _) => format!("version {chosen} was not loaded; fell back ({base})"),
            (Route::Backup, None, Some(note)) => format!("backup {note} ({base})"),
            _ => base,
        }
    }

    /// The sticky key's hash as stored (never the key).
    pub fn sticky_hash_text(&self) -> Option<String> {
        match self.decision.reason {
            Reason::StickyKey(h) => Some(format!("{h:016x}")),
            _ => None,
        }
    }
}

/// Where a model's traffic goes.
///
/// Invariants (checked when built from config): the challengers' weights sum to at most
/// `TOTAL_BP`; no version appears twice among champion and challengers; every version named
/// here is loaded in the same serving snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingTable {
    pub champion: u32,
    /// The route label of requests the champion answers: `Champion`, or `Backup` when a guard
    /// trip put a backup in the champion's place.
    #[serde(default = "champion_route")]
    pub champion_route: Route,
    /// (version, weight in basis points). The champion gets `TOTAL_BP` minus their sum.
    pub challengers: Vec<(u32, u32)>,
    /// (version, share of requests mirrored, in basis points).
    pub shadows: Vec<(u32, u32)>,
    /// Warm standbys, in order of preference.
    pub backup: Vec<u32>,
    /// Lower-case header whose value pins a caller to one version while weights stand.
    pub sticky_header: Option<String>,
}

/// A model's routing as an override stores it (a guard trip, an operator action): the table and
/// what the guard and rollback remember, everything needed to serve the same after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideState {
    pub routing: RoutingTable,
    /// The champion before the last change of champion, for rollback.
    pub previous_champion: Option<u32>,
    /// Versions the guard moved traffic away from; never picked as a backup until reset.
    #[serde(default)]
    pub ejected: BTreeSet<u32>,
}

fn champion_route() -> Route {
    Route::Champion
}

/// Process-wide source of draws: a counter through a mixing function. Uniform, lock-free, and
/// needs no RNG state per request.
static DRAWS: AtomicU64 = AtomicU64::new(0x5eed_5eed_5eed_5eed);

fn next_draw() -> u64 {
    mix(DRAWS.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed))
}

/// SplitMix64's finaliser: a bijection that spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a sticky key (FNV-1a, then mixed): the same on every replica and
/// across restarts, unlike std's `DefaultHasher`.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

impl RoutingTable {
    /// A table that sends everything to one version.
    pub fn single(version: u32) -> RoutingTable {
        RoutingTable {
            champion: version,
            champion_route: Route::Champion,
            challengers: Vec::new(),
            shadows: Vec::new(),
            backup: Vec::new(),
            sticky_header: None,
        }
    }

    /// The champion's share in basis points.
    pub fn champion_weight(&self) -> u32 {
        TOTAL_BP.saturating_sub(self.challengers.iter().map(|(_, w)| w).sum())
    }

    /// Chooses the version for an unpinned request. With a sticky key, the choice is weighted
    /// rendezvous hashing: the same key always gets the same version while weights stand, and
    /// a weight change moves only the keys that must move. Without one, a uniform draw.
    pub fn pick(&self, sticky_key: Option<&[u8]>) -> Decision {
        if self.challengers.is_empty() {
            let reason = match sticky_key {
                Some(k) => Reason::StickyKey(key_hash(k)),
                None => Reason::WeightBucket(0),
            };
            return Decision { version: self.champion, route: self.champion_route, reason };
        }
        match sticky_key {
            Some(key) => self.pick_sticky(key_hash(key)),
            None => self.pick_weighted((next_draw() % u64::from(TOTAL_BP)) as u32),
        }
    }

    fn candidates(&self) -> impl Iterator<Item = (u32, u32, Route)> + '_ {
        std::iter::once((self.champion, self.champion_weight(), self.champion_route))
            .chain(self.challengers.iter().map(|&(v, w)| (v, w, Route::Challenger)))
    }

    /// The version whose cumulative weight range holds `bucket` (0..TOTAL_BP).
    pub fn pick_weighted(&self, bucket: u32) -> Decision {
        let mut upper = 0;
        for (version, weight, route) in self.candidates() {
            upper += weight;
            if bucket < upper {
                return Decision { version, route, reason: Reason::WeightBucket(bucket) };
            }
        }
        // Unreachable while weights sum to TOTAL_BP; the champion is the safe answer.
        Decision { version: self.champion, route: self.champion_route, reason: Reason::WeightBucket(bucket) }
    }

    /// Weighted rendezvous: score = -w / ln(u), u = hash(key, version) mapped into (0, 1).
    pub fn pick_sticky(&self, key: u64) -> Decision {
        let mut best: Option<(f64, u32, Route)> = None;
        for (version, weight, route) in self.candidates() {
            if weight == 0 {
                continue;
            }
            let h = mix(key ^ mix(u64::from(version)));
            // 53 random bits → (0, 1), never 0 so ln is finite.
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = -f64::from(weight) / u.ln();
            if best.is_none_or(|(s, _, _)| score > s) {
                best = Some((score, version, route));
            }
        }
        let (_, version, route) = best.unwrap_or((0.0, self.champion, self.champion_route));
        Decision { version, route, reason: Reason::StickyKey(key) }
    }

    /// The shadows that get a copy of this request: each independently, by its percentage.
    pub fn shadows_for_request(&self) -> impl Iterator<Item = u32> + '_ {
        self.shadows.iter().filter(|(_, bp)| (next_draw() % u64::from(TOTAL_BP)) < u64::from(*bp)).map(|(v, _)| *v)
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
