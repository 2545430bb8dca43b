//! Config parsing and validation tests, including every example under `configs/`.

use super::*;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
path = "/tmp/store"

[[model]]
name = "mlp"
versions = ["champion", 2, "3"]
[model.engine]
instances = 2
max_batch = 8
batch_delay_us = 200
"#;

#[test]
fn parses_a_good_config() {
    let c = Config::from_toml_str("good", GOOD).expect("valid");
    assert_eq!(c.server.listen.port(), 0);
    assert_eq!(
        c.models[0].versions,
        vec![VersionSelector::Alias("champion".into()), VersionSelector::Number(2), VersionSelector::Number(3)]
    );
    assert_eq!(c.models[0].routing.champion, VersionSelector::Alias("champion".into()));
    assert_eq!(c.models[0].engine.instances, 2);
    assert_eq!(c.models[0].engine.batch_delay, Duration::from_micros(200));
    assert_eq!(c.server.max_body_bytes, DEFAULT_MAX_BODY_BYTES as usize);
}

#[test]
fn grpc_listen_is_off_by_default_and_checked() {
    assert_eq!(Config::from_toml_str("good", GOOD).expect("valid").server.grpc_listen, None);
    let on = GOOD.replace("[store]", "grpc_listen = \"127.0.0.1:8081\"\n\n[store]");
    let c = Config::from_toml_str("on", &on).expect("valid");
    assert_eq!(c.server.grpc_listen, Some("127.0.0.1:8081".parse().expect("address")));
    let bad = GOOD.replace("[store]", "grpc_listen = \"localhost\"\n\n[store]");
    let e = Config::from_toml_str("bad", &bad).expect_err("not an address");
    assert!(e.problems.iter().any(|p| p.contains("grpc_listen = \"localhost\" is not an address")), "{e:?}");
    let clash = "[server]\nlisten = \"127.0.0.1:9000\"\ngrpc_listen = \"127.0.0.1:9000\"\n[store]\npath = \"/s\"\n[[model]]\nname = \"m\"\nversions = [1]\n";
    let e = Config::from_toml_str("clash", clash).expect_err("same port");
    assert!(e.problems.iter().any(|p| p.contains("give it its own port")), "{e:?}");
}

#[test]
fn lists_every_problem() {
    let bad = r#"
colour = "blue"
[server]
listen = "nowhere"
bogus = 1
[[model]]
name = "a"
versions = [0, "Bad Alias"]
[[model]]
name = "b"
versions = [1, 1]
default_version = 4
[model.engine]
device = "tpu"
instances = 0
[[model]]
name = "c"
versions = [1]
unknown = true
"#;
    let err = Config::from_toml_str("bad.toml", bad).unwrap_err();
    let text = err.to_string();
    for needle in [
        "unknown top-level key 'colour'",
        "line 5, column 1: [server] → bogus: unknown key `bogus`; expected one of listen, admin_listen",
        "model 'a': 0 is not a version number",
        "model 'a': \"Bad Alias\" is not a version number",
        "model 'b': version 1 is listed twice",
        "model 'b': default_version 4 is not one of its versions",
        "model 'b': device \"tpu\" must be",
        "model 'b': engine.instances = 0 must be between 1 and 64",
        "line 19, column 1: model \"c\" → unknown: unknown key `unknown`",
        "[store] path is required",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn duplicate_models_and_missing_models() {
    let dup = "[store]\npath='s'\n[[model]]\nname='m'\nversions=[1]\n[[model]]\nname='m'\nversions=[2]\n";
    assert!(Config::from_toml_str("d", dup).unwrap_err().to_string().contains("defined more than once"));
    let none = "[store]\npath='s'\n";
    assert!(Config::from_toml_str("n", none).unwrap_err().to_string().contains("no [[model]] tables"));
}

#[test]
fn syntax_errors_are_reported_not_panicked() {
    for text in ["[server", "model = 3\n[store]\npath='x'", "\u{0}", "[[model]]\nname = \"m\"\nversions = [1"] {
        assert!(Config::from_toml_str("x", text).is_err(), "{text:?}");
    }
}

#[test]
fn load_reads_env_overrides_and_resolves_relative_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[store]\npath = \"store\"\n[[model]]\nname = \"m\"\nversions = [1]\n").expect("write");
    let c = Config::load(&path).expect("valid");
    assert_eq!(c.store_path, dir.path().join("store"));
    let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(missing.to_string().contains("cannot read the file"), "{missing}");
    // Bytes already read parse the same way as the file, relative paths included.
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(Config::from_file_bytes(&path, &bytes).expect("valid"), c);
    let latin1 = b"[store]\npath = \"caf\xe9\"\n";
    let err = Config::from_file_bytes(&path, latin1).unwrap_err().to_string();
    assert!(err.contains("the file is not valid UTF-8"), "{err}");
}

/// Every example config shipped in `configs/` must parse and validate.
#[test]
fn every_example_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("read");
            if let Err(e) = Config::from_toml_str(&path.display().to_string(), &text) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(seen > 0, "no example configs found in {}", dir.display());
}

#[test]
fn routing_is_validated_and_its_versions_loaded() {
    let good = "[store]\npath='s'\n[[model]]\nname='m'\nversions=[4]\n[model.routing]\nchampion='champion'\n\
                challengers={ 2 = 12.5 }\nshadows={ 3 = 10 }\nbackup=[1]\nsticky_header='X-User-Id'\n";
    let c = Config::from_toml_str("g", good).expect("valid");
    let m = &c.models[0];
    assert_eq!(m.routing.challengers, vec![(VersionSelector::Number(2), 1_250)]);
    assert_eq!(m.routing.sticky_header.as_deref(), Some("x-user-id"));
    for v in [VersionSelector::Number(4), VersionSelector::Alias("champion".into()), VersionSelector::Number(1)] {
        assert!(m.versions.contains(&v), "{v} not loaded");
    }
    let bad = "[store]\npath='s'\n[[model]]\nname='m'\ndefault_version=1\nversions=[1]\n[model.routing]\n\
               challengers={ 2 = 70, 3 = 40, 1 = 5 }\nshadows={ 2 = 150 }\nsticky_header='bad header'\n";
    let text = Config::from_toml_str("b", bad).unwrap_err().to_string();
    for needle in [
        "routing.champion is required",
        "set routing.champion or default_version, not both",
        "challenger weights add up to 115%",
        "routing.shadows.2 = 150 must be a percentage",
        "shadow 2 already serves live traffic",
        "is not a valid header name",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn execution_is_auto_by_default_and_inline_cannot_batch() {
    let c = Config::from_toml_str("good", GOOD).expect("valid");
    assert_eq!(c.models[0].engine.execution, Execution::Auto);
    let head = "[store]\npath='s'\n[server]\nworker_threads = 3\n[[model]]\nname='m'\nversions=[1]\n[model.engine]\n";
    // Auto going inline gets one session per server thread, unless `instances` says otherwise.
    let c = Config::from_toml_str("auto", head).expect("valid");
    assert_eq!((c.models[0].engine.instances, c.models[0].engine.inline_instances), (1, 3));
    let c = Config::from_toml_str("auto", &format!("{head}instances = 2\n")).expect("valid");
    assert_eq!((c.models[0].engine.instances, c.models[0].engine.inline_instances), (2, 2));
    let c = Config::from_toml_str("workers", &format!("{head}execution = \"workers\"\n")).expect("valid");
    assert_eq!(c.models[0].engine.execution, Execution::Workers);

    let inline = "[store]\npath='s'\n[[model]]\nname='m'\nversions=[1]\n[model.engine]\nexecution = \"inline\"\n";
    let c = Config::from_toml_str("inline", inline).expect("valid");
    assert_eq!(c.models[0].engine.execution, Execution::Inline);
    assert_eq!(c.models[0].engine.max_batch, 1);

    let text = Config::from_toml_str("bad", &format!("{inline}max_batch = 8\n")).unwrap_err().to_string();
    assert!(text.contains("model 'm': engine.execution = \"inline\" runs one request per call"), "{text}");
    assert!(text.contains("(max_batch = 8)"), "{text}");
    let text = Config::from_toml_str("bad", &inline.replace("inline", "threads")).unwrap_err().to_string();
    assert!(text.contains("engine.execution = \"threads\" must be \"auto\", \"workers\" or \"inline\""), "{text}");
}

#[test]
fn lineage_section_defaults_and_refusals() {
    let c = Config::from_toml_str("good", GOOD).expect("valid");
    assert_eq!(c.lineage, LineageConfig::default());
    assert!(!c.models[0].lineage_input_sha256);
    let text = format!(
        "{GOOD}\n[model.lineage]\ninput_sha256 = true\n[lineage]\nenabled = false\ncapacity = 10\non_full = \"drop\"\ndurability = \"normal\"\n"
    );
    let c = Config::from_toml_str("custom", &text).expect("valid");
    assert_eq!(
        c.lineage,
        LineageConfig {
            enabled: false,
            capacity: 10,
            on_full: OnFull::Drop,
            durability: LineageDurability::Normal,
            ..LineageConfig::default()
        }
    );
    assert!(c.models[0].lineage_input_sha256);
    let bad = format!("{GOOD}\n[lineage]\ncapacity = 0\non_full = \"sometimes\"\nbatch = 3\n");
    let text = Config::from_toml_str("bad", &bad).unwrap_err().to_string();
    assert!(text.contains("[lineage] → batch: unknown key `batch`"), "{text}");
    // The unknown key hides nothing else of its table.
    assert!(text.contains("[lineage] capacity = 0 must be between 1 and 10000000"), "{text}");
    let bad = format!("{GOOD}\n[lineage]\ncapacity = 0\non_full = \"sometimes\"\ndurability = \"fsync\"\n");
    let text = Config::from_toml_str("bad", &bad).unwrap_err().to_string();
    assert!(text.contains("[lineage] durability = \"fsync\" must be \"full\" or \"normal\""), "{text}");
    assert!(text.contains("[lineage] capacity = 0 must be between 1 and 10000000"), "{text}");
    assert!(text.contains("on_full = \"sometimes\" must be \"block\" or \"drop\""), "{text}");
}

#[test]
fn guard_section_parses_durations_and_lists_its_problems() {
    let text = format!("{GOOD}\n[model.guard]\nwindow = \"10s\"\np99_ms = 50\ninterval = \"500ms\"\n");
    let g = Config::from_toml_str("g", &text).expect("valid").models[0].guard.clone().expect("guard");
    assert_eq!(
        (g.window, g.interval, g.cooldown),
        (Duration::from_secs(10), Duration::from_millis(500), Duration::from_secs(60))
    );
    assert_eq!((g.p99_ms, g.max_error_rate, g.min_requests), (Some(50.0), None, 20));
    let bad = format!(
        "{GOOD}\n[model.guard]\nwindow = \"soon\"\ninterval = \"2h\"\np99_ms = -1\nmax_error_rate = 1.5\nmin_requests = 0\n"
    );
    let text = Config::from_toml_str("bad", &bad).unwrap_err().to_string();
    for needle in [
        "guard.window = \"soon\" is not a duration",
        "guard.interval = \"2h\" must be between 10ms and 10m",
        "guard.p99_ms = -1 must be a positive number",
        "guard.max_error_rate = 1.5 must be a share between 0 and 1",
        "guard.min_requests = 0 must be between 1 and 1000000",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let none = format!("{GOOD}\n[model.guard]\nwindow = \"10s\"\n");
    let text = Config::from_toml_str("none", &none).unwrap_err().to_string();
    assert!(text.contains("guard needs p99_ms, max_error_rate or both"), "{text}");
}

#[test]
fn huge_challenger_lists_are_problems_not_overflows() {
    // Found by reading after fuzzing: 429,497 challengers at 100% overflowed a u32 sum.
    let many: String = (1..=500).map(|v| format!("{v} = 100\n")).collect();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"/s\"\n[[model]]\nname = \"m\"\n[model.routing]\nchampion = 9999\n[model.routing.challengers]\n{many}"
    );
    let err = Config::from_toml_str("many", &text).unwrap_err().to_string();
    assert!(err.contains("add up to 50000%"), "{err}");
    assert!(err.contains("routing.challengers names 500 versions; at most 64"), "{err}");
}

/// The example config writes out the defaults it shows; they must be the defaults the code
/// applies (written once, in `ServerConfig::default` and `LineageConfig::default`).
#[test]
fn the_example_config_shows_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/example.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    let config = Config::from_toml_str("example.toml", &text).expect("valid");
    let d = ServerConfig::default();
    assert_eq!(config.server.listen, d.listen);
    assert_eq!(config.server.admin_listen, d.admin_listen);
    assert_eq!(config.server.max_body_bytes, d.max_body_bytes);
    assert_eq!(config.server.request_timeout, d.request_timeout);
    assert_eq!(config.server.drain_timeout, d.drain_timeout);
    assert_eq!(config.server.feedback_rate, d.feedback_rate);
    assert_eq!(config.lineage, LineageConfig::default());
    // And a config that sets nothing gets exactly those defaults.
    let bare = Config::from_toml_str("bare.toml", "[store]\npath = \"s\"\n[[model]]\nname = \"m\"\nversions = [1]\n")
        .expect("valid");
    assert_eq!(bare.server, d);
    assert_eq!(bare.lineage, LineageConfig::default());
}

/// What a newcomer's typos look like: the place (line, column, the model by name, the key
/// path), what was expected, the nearest known key, and every problem at once.
#[test]
fn problems_name_their_place_and_a_bad_value_hides_nothing() {
    let text = r#"[store]
path = "s"
[[model]]
name = "mlp"
versions = [1, 2]
[model.routing]
champion = 1
chalengers = { 2 = 10 }
[model.guard]
p99_ms = "fifty"
min_requests = 0
[model.engine]
instances = "two"
max_batch = 0
"#;
    let err = Config::from_toml_str("switchyard.toml", text).unwrap_err();
    let all = err.to_string();
    for needle in [
        "line 8, column 1: model \"mlp\" → routing → chalengers: unknown key `chalengers`; did you mean `challengers`?",
        "line 10, column 1: model \"mlp\" → guard → p99_ms: invalid type: string \"fifty\", expected a number",
        "line 13, column 1: model \"mlp\" → engine → instances: invalid type: string \"two\", expected a whole number ≥ 0",
        // Semantic problems of the same model are still found.
        "model 'mlp': engine.max_batch = 0 must be between 1 and 4096",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    let typo = Config::from_toml_str("t.toml", "[servr]\n[store]\npath='s'\n").unwrap_err().to_string();
    assert!(typo.contains("unknown top-level key 'servr' (did you mean [server]?)"), "{typo}");
}

#[test]
fn alert_sinks_are_validated() {
    let good = "[store]\npath = 's'\n[[model]]\nname = 'm'\nversions = [1]\n\
                [[alert]]\nkind = 'webhook'\nurl = 'http://hooks:8080/x'\n\
                [[alert]]\nkind = 'alertmanager'\nurl = 'http://am:9093'\nevents = ['guard_trip']\n";
    let c = Config::from_toml_str("ok", good).expect("valid");
    assert_eq!(c.alerts.len(), 2);
    assert_eq!(c.alerts[0].sink, AlertSink::Webhook);
    assert_eq!(c.alerts[0].events.len(), ALERT_KINDS.len(), "every kind by default");
    assert_eq!(c.alerts[1].events, ["guard_trip"]);
    let bad = "[store]\npath = 's'\n[[model]]\nname = 'm'\nversions = [1]\n\
               [[alert]]\nkind = 'pager'\nurl = 'https://x'\nevents = ['trip']\n[[alert]]\nurl = 'http://x'\n";
    let text = Config::from_toml_str("bad", bad).unwrap_err().to_string();
    for needle in [
        "[[alert]] #1: kind = \"pager\" must be \"webhook\", \"alertmanager\" or \"slack\"",
        "[[alert]] #1: url = \"https://x\" must be an http:// URL with a host",
        "[[alert]] #1: events: unknown alert kind \"trip\"",
        "[[alert]] #2: kind is required",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn slices_and_their_gates_are_checked() {
    let with = |extra: &str| GOOD.replace("[model.engine]", &format!("{extra}\n[model.engine]"));
    let c = Config::from_toml_str("s", &with("[model.slices]\nheader = \"X-Market\"")).expect("valid");
    assert_eq!(c.models[0].slices, Some(SliceConfig { header: "x-market".into(), top_k: 5 }));
    let problems = |text: &str| Config::from_toml_str("bad", text).expect_err("refused").problems.join("\n");
    assert!(problems(&with("[model.slices]\ntop_k = 3")).contains("slices needs a header"));
    assert!(problems(&with("[model.slices]\nheader = \"x market\"")).contains("is not a header name"));
    assert!(
        problems(&with("[model.slices]\nheader = \"x\"\ntop_k = 500"))
            .contains("slices.top_k = 500 must be between 1 and 50")
    );
    let gate_without_slices = problems(&with("[model.promotion]\nmax_slice_regression = 0.02"));
    assert!(gate_without_slices.contains("add [model.slices]"), "{gate_without_slices}");
    assert!(
        problems(&with("[model.slices]\nheader = \"x\"\n[model.promotion]\nmax_slice_gap = 2.0"))
            .contains("max_slice_gap = 2 must be a share between 0 and 1")
    );
}

#[test]
fn upstream_section_defaults_and_refusals() {
    let c = Config::from_toml_str("good", GOOD).expect("valid");
    assert_eq!(c.upstream, UpstreamConfig::default());
    let text = GOOD.replace("[store]", "[upstream]\nconnect_timeout = \"250ms\"\neject_after = 5\n\n[store]");
    let c = Config::from_toml_str("up", &text).expect("valid");
    assert_eq!((c.upstream.connect_timeout, c.upstream.eject_after), (Duration::from_millis(250), 5));
    let bad = GOOD.replace("[store]", "[upstream]\nretry_budget = 2.0\nmax_concurrency = 0\nbogus = 1\n\n[store]");
    let problems = Config::from_toml_str("bad", &bad).expect_err("refused").problems.join("\n");
    assert!(problems.contains("retry_budget = 2 must be between 0 and 1"), "{problems}");
    assert!(problems.contains("max_concurrency = 0 must be between 1 and 100000"), "{problems}");
    assert!(problems.contains("bogus"), "{problems}");
}

#[test]
fn replica_id_is_optional_and_checked() {
    assert_eq!(Config::from_toml_str("good", GOOD).expect("valid").server.replica_id, None);
    let named = GOOD.replace("[store]", "replica_id = \"gw-2.eu:8000\"\n\n[store]");
    assert_eq!(
        Config::from_toml_str("named", &named).expect("valid").server.replica_id.as_deref(),
        Some("gw-2.eu:8000")
    );
    let bad = GOOD.replace("[store]", "replica_id = \"gw 2\"\n\n[store]");
    let problems = Config::from_toml_str("bad", &bad).expect_err("refused").problems.join("\n");
    assert!(problems.contains("replica_id = \"gw 2\" must be 1–128 characters"), "{problems}");
}
