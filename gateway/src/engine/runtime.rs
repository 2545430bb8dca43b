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
        "ONNX Runtime library not found (looked for {looked}). Run `scripts/fetch-onnxruntime.sh` \
         (fetches onnxruntime=={ONNXRUNTIME_VERSION} from PyPI) and point `[runtime] onnxruntime` \
         or ORT_DYLIB_PATH at the file it prints, or put {LIBRARY_NAME} beside the switchyard binary"
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
    /// Loads the runtime once per process. `configured` is `[runtime] onnxruntime` (or the CLI's
    /// `--onnxruntime`); then `ORT_DYLIB_PATH`; then the binary's own directory.
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

fn locate(configured: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let mut looked = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = configured {
        candidates.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            candidates.push(PathBuf::from(p));
        }
        if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
            candidates.push(dir.join(LIBRARY_NAME));
        }
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        looked.push(c.display().to_string());
    }
    if looked.is_empty() {
        looked.push("ORT_DYLIB_PATH (unset)".to_owned());
    }
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
}
