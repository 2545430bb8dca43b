//! Routing table tests: weighted shares, sticky stability and minimal movement, shadows.

use super::*;

fn table(challengers: Vec<(u32, u32)>) -> RoutingTable {
    RoutingTable { challengers, ..RoutingTable::single(1) }
}

fn shares(t: &RoutingTable, n: usize, pick: impl Fn(usize) -> Decision) -> Vec<(u32, f64)> {
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..n {
        *counts.entry(pick(i).version).or_insert(0usize) += 1;
    }
    let _ = t;
    counts.into_iter().map(|(v, c)| (v, c as f64 * 100.0 / n as f64)).collect()
}

#[test]
fn weighted_split_is_within_two_points_over_10k() {
    let t = table(vec![(2, 2_000)]);
    let s = shares(&t, 10_000, |_| t.pick(None));
    assert_eq!(s.len(), 2);
    assert!((s[0].1 - 80.0).abs() <= 2.0, "{s:?}");
    assert!((s[1].1 - 20.0).abs() <= 2.0, "{s:?}");
    let three = table(vec![(2, 1_000), (3, 500)]);
    let s = shares(&three, 10_000, |_| three.pick(None));
    assert!((s[0].1 - 85.0).abs() <= 2.0 && (s[1].1 - 10.0).abs() <= 2.0 && (s[2].1 - 5.0).abs() <= 2.0, "{s:?}");
}

#[test]
fn buckets_map_to_cumulative_ranges() {
    let t = table(vec![(2, 2_000)]);
    assert_eq!(t.pick_weighted(0).version, 1);
    assert_eq!(t.pick_weighted(7_999).version, 1);
    assert_eq!(
        t.pick_weighted(8_000),
        Decision { version: 2, route: Route::Challenger, reason: Reason::WeightBucket(8_000) }
    );
    assert_eq!(t.pick_weighted(9_999).version, 2);
}

#[test]
fn sticky_keys_hold_and_follow_the_weights() {
    let t = table(vec![(2, 2_000)]);
    let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    for k in keys.iter().take(100) {
        let first = t.pick(Some(k.as_bytes()));
        for _ in 0..5 {
            assert_eq!(t.pick(Some(k.as_bytes())), first);
        }
    }
    let s = shares(&t, keys.len(), |i| t.pick(Some(keys[i].as_bytes())));
    assert!((s[1].1 - 20.0).abs() <= 2.0, "{s:?}");
}

#[test]
fn weight_change_moves_only_the_keys_that_must_move() {
    let before = table(vec![(2, 2_000)]);
    let after = table(vec![(2, 3_000)]);
    let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
    let mut moved = 0;
    for k in &keys {
        let (a, b) = (before.pick(Some(k.as_bytes())), after.pick(Some(k.as_bytes())));
        if a.version != b.version {
            moved += 1;
            // Raising the challenger's weight only moves keys towards it.
            assert_eq!((a.version, b.version), (1, 2), "{k}");
        }
    }
    // 10 points of traffic must move; a reshuffle would move far more.
    let moved_pct = moved as f64 * 100.0 / keys.len() as f64;
    assert!((moved_pct - 10.0).abs() <= 2.0, "moved {moved_pct}%");
}

#[test]
fn zero_weight_challenger_gets_nothing() {
    let t = table(vec![(2, 0)]);
    for i in 0..1_000 {
        assert_eq!(t.pick(Some(format!("{i}").as_bytes())).version, 1);
        assert_eq!(t.pick(None).version, 1);
    }
}

#[test]
fn shadows_receive_their_percentage() {
    let t = RoutingTable { shadows: vec![(3, 1_000)], ..RoutingTable::single(1) };
    let copies: usize = (0..10_000).map(|_| t.shadows_for_request().count()).sum();
    assert!((copies as f64 / 100.0 - 10.0).abs() <= 1.5, "{copies} copies");
}

#[test]
fn key_hash_is_stable() {
    // Fixed values: a change here would move every sticky caller on upgrade.
    assert_eq!(key_hash(b""), mix(0xcbf2_9ce4_8422_2325));
    assert_eq!(key_hash(b"user-1"), key_hash(b"user-1"));
    assert_ne!(key_hash(b"user-1"), key_hash(b"user-2"));
}

#[test]
fn reasons_read_well() {
    let choice =
        |decision, fell_back, note: Option<&str>| Choice { decision, fell_back, note: note.map(str::to_owned) };
    let d = Decision { version: 2, route: Route::Challenger, reason: Reason::WeightBucket(8123) };
    assert_eq!(choice(d, None, None).reason_text(), "weight bucket 8123 of 10000");
    assert_eq!(
        choice(d, Some(5), None).reason_text(),
        "version 5 was not loaded; fell back (weight bucket 8123 of 10000)"
    );
    let d = Decision { version: 1, route: Route::Backup, reason: Reason::StickyKey(0xab) };
    assert_eq!(
        choice(d, Some(3), None).reason_text(),
        "backup: version 3 was not loaded (sticky key 00000000000000ab)"
    );
    assert_eq!(
        choice(d, None, Some("after guard trip of version 3 (p99 80 ms > 50 ms)")).reason_text(),
        "backup after guard trip of version 3 (p99 80 ms > 50 ms) (sticky key 00000000000000ab)"
    );
    assert_eq!(choice(d, None, None).sticky_hash_text().as_deref(), Some("00000000000000ab"));
    let pinned = Decision { version: 4, route: Route::Pinned, reason: Reason::PinnedByPath };
    assert_eq!(choice(pinned, None, None).reason_text(), "pinned by path");
    assert_eq!(choice(pinned, None, None).sticky_hash_text(), None);
}
