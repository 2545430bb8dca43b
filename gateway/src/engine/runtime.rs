//! Finding and loading the ONNX Runtime shared library. It is loaded at run time (never downloaded
//! by a build script); a missing or too-old library is one clear error, never a panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ONNX Runtime release the project is built and tested against (`api-31` in Cargo.toml).
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";

const LIBRARY_NAME: &str = "libonnxruntime.so";

/// The loaded runtime: the ORT environment every session is created from.
#[derive(Debug)]
pub struct Runtime {
    env: ort::environment::Environment,
    library: PathBuf,
}

/// Why the runtime could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found (looked for {looked}). Fetch it with `make setup` or \
         `scripts/fetch-onnxruntime.sh` in the Switchyard checkout (onnxruntime=={ONNXRUNTIME_VERSION} \
         from PyPI, into .cache/onnxruntime/, where every switchyard command finds it), or point \
         --onnxruntime, `[runtime] onnxruntime`, SWITCHYARD_ONNXRUNTIME or ORT_DYLIB_PATH at a \
         {LIBRARY_NAME}, or put one beside the switchyard binary"
    )]
    NotFound { looked: String },
    #[error(
        "cannot load ONNX Runtime from {path}: {reason}. Switchyard needs onnxruntime \
         {ONNXRUNTIME_VERSION} or newer; `scripts/fetch-onnxruntime.sh` fetches it"
    )]
    Load { path: PathBuf, reason: String },
    #[error("ONNX Runtime was already loaded from {loaded}; cannot switch to {requested} in the same process")]
    AlreadyLoaded { loaded: PathBuf, requested: PathBuf },
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

impl Runtime {
    /// Loads the runtime once per process, from the first library found (see `candidates` for
    /// the order). `configured` is `[runtime] onnxruntime` (or the CLI's `--onnxruntime`).
    pub fn load(configured: Option<&Path>) -> Result<&'static Runtime, RuntimeError> {
        let path = locate(configured)?;
        if let Some(rt) = RUNTIME.get() {
            return if rt.library == path {
                Ok(rt)
            } else {
                Err(RuntimeError::AlreadyLoaded { loaded: rt.library.clone(), requested: path })
            };
        }
        let load_err = |reason: String| RuntimeError::Load { path: path.clone(), reason };
        let builder = ort::init_from(&path).map_err(|e| load_err(e.to_string()))?;
        let env = builder.with_name("switchyard").build().map_err(|e| load_err(e.to_string()))?;
        // A concurrent first load may have won the race; both loaded the same file.
        Ok(RUNTIME.get_or_init(|| Runtime { env, library: path }))
    }

    /// The environment sessions are built from.
    pub fn env(&self) -> &ort::environment::Environment {
        &self.env
    }

    /// The library file in use.
    pub fn library(&self) -> &Path {
        &self.library
    }
}

/// Environment variable naming the library, read before `ORT_DYLIB_PATH`.
pub const LIBRARY_ENV: &str = "SWITCHYARD_ONNXRUNTIME";

/// Where `scripts/fetch-onnxruntime.sh` (run by `make run`, `make test`, `make setup`) puts the
/// library, relative to the repository root.
fn cache_path() -> PathBuf {
    Path::new(".cache").join("onnxruntime").join(ONNXRUNTIME_VERSION).join(LIBRARY_NAME)
}

/// The places looked in, in order. A library named explicitly is the only one tried, so a wrong
/// path is reported rather than quietly replaced: the configured path, else
/// `SWITCHYARD_ONNXRUNTIME`, else `ORT_DYLIB_PATH`. With none named: `libonnxruntime.so` beside
/// the binary, then the project's cache (`.cache/onnxruntime/VERSION/`) in the binary's
/// directory or above it (a binary under `target/release/` finds the cache of its checkout),
/// then in the working directory or above it.
fn candidates(
    configured: Option<&Path>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    exe_dir: Option<&Path>,
    cwd: Option<&Path>,
) -> Vec<PathBuf> {
    if let Some(p) = configured {
        return vec![p.to_path_buf()];
    }
    if let Some(named) =
        [LIBRARY_ENV, "ORT_DYLIB_PATH"].into_iter().find_map(|name| env(name).filter(|v| !v.is_empty()))
    {
        return vec![PathBuf::from(named)];
    }
    let mut found = Vec::new();
    if let Some(dir) = exe_dir {
        found.push(dir.join(LIBRARY_NAME));
    }
    for start in [exe_dir, cwd].into_iter().flatten() {
        for dir in start.ancestors().take(6) {
            let candidate = dir.join(cache_path());
            if !found.contains(&candidate) {
                found.push(candidate);
            }
        }
    }
    found
}

fn locate(configured: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    let cwd = std::env::current_dir().ok();
    let all = candidates(configured, |name| std::env::var_os(name), exe_dir.as_deref(), cwd.as_deref());
    if let Some(path) = all.iter().find(|c| c.is_file()) {
        return Ok(path.clone());
    }
    let looked: Vec<String> = all.iter().map(|c| c.display().to_string()).collect();
    Err(RuntimeError::NotFound { looked: looked.join(", ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_configured_library_names_the_fix() {
        let err = locate(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so"), "{msg}");
        assert!(msg.contains("scripts/fetch-onnxruntime.sh"), "{msg}");
    }

    #[test]
    fn a_named_library_is_the_only_one_tried_and_discovery_looks_beside_the_binary_then_in_the_cache() {
        let both = |name: &str| match name {
            "SWITCHYARD_ONNXRUNTIME" => Some("/opt/sy/libonnxruntime.so".into()),
            "ORT_DYLIB_PATH" => Some("/opt/ort/libonnxruntime.so".into()),
            _ => None,
        };
        let exe = Path::new("/src/switchyard/target/release");
        assert_eq!(candidates(Some(Path::new("/x.so")), both, Some(exe), None), [Path::new("/x.so")]);
        assert_eq!(candidates(None, both, Some(exe), None), [Path::new("/opt/sy/libonnxruntime.so")]);
        let ort = |name: &str| (name == "ORT_DYLIB_PATH").then(|| "/opt/ort/libonnxruntime.so".into());
        assert_eq!(candidates(None, ort, Some(exe), None), [Path::new("/opt/ort/libonnxruntime.so")]);
        let found = candidates(None, |_| Some("".into()), Some(exe), Some(Path::new("/home/me")));
        let cache = format!(".cache/onnxruntime/{ONNXRUNTIME_VERSION}/libonnxruntime.so");
        assert_eq!(found[0], exe.join("libonnxruntime.so"), "empty variables name nothing");
        assert!(found.contains(&Path::new("/src/switchyard").join(&cache)), "the checkout's cache: {found:?}");
        assert!(found.contains(&Path::new("/home/me").join(&cache)), "the working directory's: {found:?}");
    }

    #[test]
    fn a_binary_in_the_checkout_finds_the_cache_without_any_variable() {
        let root = tempfile::tempdir().expect("tempdir");
        let lib = root.path().join(cache_path());
        std::fs::create_dir_all(lib.parent().expect("dir")).expect("mkdir");
        std::fs::write(&lib, b"not really a library").expect("write");
        let exe = root.path().join("target/debug");
        let found = candidates(None, |_| None, Some(&exe), None);
        assert_eq!(found.iter().find(|c| c.is_file()), Some(&lib));
    }
}
