//! Content-addressed artifact store: immutable files named by their sha256 under
//! `<root>/artifacts/sha256/<first 2 hex>/<64 hex>`, written atomically and verified on read.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Local directory of immutable, content-addressed model files.
///
/// Files are only ever created (temp file, fsync, rename, fsync of the directory) and never
/// edited; every read recomputes the sha256, so a corrupt file is refused, never served.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    /// `<store root>/artifacts`; every artifact path lies below `<root>/sha256/`.
    root: PathBuf,
}

/// Makes temp file names unique within this process; the pid makes them unique across processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ArtifactStore {
    /// An artifact store rooted at `root` (conventionally `<store dir>/artifacts`). Creates
    /// nothing: directories are made on the first `put`.
    pub fn new(root: impl Into<PathBuf>) -> ArtifactStore {
        ArtifactStore { root: root.into() }
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the artifact with this digest lives (whether or not it exists).
    ///
    /// Errors with `InvalidDigest` unless `sha256` is exactly 64 lowercase hex characters, so a
    /// path built here can never escape the store.
    pub fn path_for(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(StoreError::InvalidDigest { digest: sha256.to_owned() });
        }
        Ok(self.root.join("sha256").join(&sha256[..2]).join(sha256))
    }

    /// Stores `bytes` and returns their sha256 (lowercase hex) and size.
    ///
    /// A no-op when an intact copy is already stored; a stored copy that no longer matches its
    /// name is replaced. Copies `bytes` once to hash and write them off the async workers; use
    /// [`ArtifactStore::put_owned`] to avoid the copy.
    pub async fn put(&self, bytes: &[u8]) -> Result<(String, u64), StoreError> {
        self.put_owned(bytes.to_vec()).await
    }

    /// Like [`ArtifactStore::put`], taking ownership of the bytes so that nothing is copied.
    ///
    /// Cost: one sha256 pass over the bytes, plus a read and hash of the stored copy if one
    /// exists; runs on tokio's blocking pool.
    pub async fn put_owned(&self, bytes: Vec<u8>) -> Result<(String, u64), StoreError> {
        self.put_shared(Arc::new(bytes)).await
    }

    /// Like [`ArtifactStore::put_owned`], keeping the bytes for the caller (registration writes
    /// them again if garbage collection removed the file before the version committed).
    pub(crate) async fn put_shared(&self, bytes: Arc<Vec<u8>>) -> Result<(String, u64), StoreError> {
        let store = self.clone();
        run_blocking(&self.root, move || store.put_blocking(&bytes)).await
    }

    /// Removes the artifact file; returns its size, or `None` if it was already gone. Only
    /// garbage collection calls this, holding the registry's write lock (see
    /// `Registry::remove_if_unreferenced`).
    pub(crate) async fn remove(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path_for(sha256)?;
        run_blocking(&self.root, move || {
            let size = match fs::metadata(&path) {
                Ok(metadata) => metadata.len(),
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(StoreError::io(path, err)),
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(StoreError::io(path, err)),
            }
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(Some(size))
        })
        .await
    }

    /// Reads the artifact and checks that its bytes still hash to `sha256`.
    ///
    /// Errors: `InvalidDigest` for a malformed digest, `ArtifactMissing` if no file is stored,
    /// `CorruptArtifact` (with no model or version) if the bytes do not match, `Io` otherwise.
    pub async fn read_verified(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path_for(sha256)?;
        let expected = sha256.to_owned();
        run_blocking(&self.root, move || {
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::ArtifactMissing { sha256: expected, path });
                }
                Err(err) => return Err(StoreError::io(path, err)),
            };
            let actual = sha256_hex(&bytes);
            if actual != expected {
                tracing::error!(%expected, %actual, path = %path.display(), "corrupt artifact refused");
                return Err(StoreError::CorruptArtifact { model: None, version: None, expected, actual });
            }
            Ok(bytes)
        })
        .await
    }

    fn put_blocking(&self, bytes: &[u8]) -> Result<(String, u64), StoreError> {
        let digest = sha256_hex(bytes);
        let size = bytes.len() as u64;
        let path = self.path_for(&digest)?;
        match fs::read(&path) {
            Ok(existing) if sha256_hex(&existing) == digest => return Ok((digest, size)),
            Ok(_) => tracing::warn!(path = %path.display(), "replacing corrupt stored artifact"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(StoreError::io(path, err)),
        }
        let dir = path.parent().expect("path_for always yields <root>/sha256/<xx>/<digest>");
        fs::create_dir_all(dir).map_err(|err| StoreError::io(dir, err))?;
        write_atomically(dir, &path, bytes)?;
        Ok((digest, size))
    }
}

/// Lowercase hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to a temp file beside `path`, fsyncs it, renames it over `path` and fsyncs
/// the directory, so `path` is either absent or complete, even across a crash.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let file_name = path.file_name().and_then(|name| name.to_str()).expect("path_for always yields a hex file name");
    let temp =
        dir.join(format!(".{file_name}.tmp-{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut file = fs::File::create(&temp).map_err(|err| StoreError::io(&temp, err))?;
        file.write_all(bytes).map_err(|err| StoreError::io(&temp, err))?;
        file.sync_all().map_err(|err| StoreError::io(&temp, err))?;
        // Read-only is a guard against accidental edits, not a security boundary.
        let mut permissions = file.metadata().map_err(|err| StoreError::io(&temp, err))?.permissions();
        permissions.set_readonly(true);
        fs::set_permissions(&temp, permissions).map_err(|err| StoreError::io(&temp, err))?;
        fs::rename(&temp, path).map_err(|err| StoreError::io(path, err))
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is harmless, only untidy.
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(dir)
}

/// Makes a rename durable; directories cannot be opened for syncing on Windows.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        fs::File::open(dir).and_then(|handle| handle.sync_all()).map_err(|err| StoreError::io(dir, err))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Runs file work on tokio's blocking pool so async workers never wait on disk or hashing.
async fn run_blocking<T, F>(root: &Path, work: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|err| StoreError::io(root, io::Error::other(err)))?
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ArtifactStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ArtifactStore::new(dir.path().join("artifacts"));
        (dir, store)
    }

    /// Makes a stored (read-only) artifact writable so a test can damage it.
    pub(crate) fn make_writable(path: &Path) {
        let mut permissions = fs::metadata(path).expect("metadata").permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        fs::set_permissions(path, permissions).expect("set permissions");
    }

    #[test]
    fn path_for_refuses_anything_but_64_lowercase_hex() {
        let (_dir, store) = store();
        let good = "ab".repeat(32);
        let path = store.path_for(&good).expect("valid digest");
        assert!(path.starts_with(store.root().join("sha256").join("ab")));
        assert!(path.ends_with(&good));
        for bad in [
            "../x".to_owned(),
            format!("../{}", &good[3..]),
            "AB".repeat(32),
            "ab".repeat(31),
            "ab".repeat(33),
            format!("{}g", &good[1..]),
            String::new(),
            format!("{}/", &good[1..]),
        ] {
            match store.path_for(&bad) {
                Err(StoreError::InvalidDigest { digest }) => assert_eq!(digest, bad),
                other => panic!("{bad:?} was not refused: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn put_then_read_round_trips_and_is_idempotent() {
        let (_dir, store) = store();
        let (digest, size) = store.put(b"model bytes").await.expect("put");
        assert_eq!(digest, sha256_hex(b"model bytes"));
        assert_eq!(size, 11);
        let path = store.path_for(&digest).expect("path");
        assert!(path.is_file());
        let again = store.put(b"model bytes").await.expect("second put");
        assert_eq!(again, (digest.clone(), 11));
        assert_eq!(store.read_verified(&digest).await.expect("read"), b"model bytes");
        // No temp files left behind.
        let entries: Vec<_> = fs::read_dir(path.parent().expect("parent")).expect("read dir").collect();
        assert_eq!(entries.len(), 1);
    }

    #[tokio::test]
    async fn missing_and_corrupt_artifacts_are_refused() {
        let (_dir, store) = store();
        let absent = sha256_hex(b"never stored");
        match store.read_verified(&absent).await {
            Err(StoreError::ArtifactMissing { sha256, path }) => {
                assert_eq!(sha256, absent);
                assert_eq!(path, store.path_for(&absent).expect("path"));
            }
            other => panic!("expected ArtifactMissing, got {other:?}"),
        }

        let (digest, _) = store.put(b"precious").await.expect("put");
        let path = store.path_for(&digest).expect("path");
        make_writable(&path);
        fs::write(&path, b"precioux").expect("damage");
        let err = store.read_verified(&digest).await.expect_err("corrupt");
        let actual = sha256_hex(b"precioux");
        match &err {
            StoreError::CorruptArtifact { expected, actual: found, .. } => {
                assert_eq!(expected, &digest);
                assert_eq!(found, &actual);
            }
            other => panic!("expected CorruptArtifact, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&digest) && message.contains(&actual), "{message}");

        // Putting the original bytes again repairs the file.
        store.put(b"precious").await.expect("repair");
        assert_eq!(store.read_verified(&digest).await.expect("read"), b"precious");
    }
}
