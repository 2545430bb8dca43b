//! The config watcher: reloads when the config file's content changes and has settled.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Control;

/// How often the config file is checked, and how long its content must stay the same before a
/// reload (an editor writing in place is given time to finish).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);
const SETTLE: Duration = Duration::from_millis(250);

/// Watches the config file and reloads when its content changes and has settled. A file that
/// disappears or cannot be read is reported once and otherwise ignored: the last good config
/// keeps serving.
pub async fn watch_config(control: Arc<Control>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(path) = control.path().map(Path::to_path_buf) else { return };
    let mut unreadable = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        let first = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                if !unreadable {
                    tracing::warn!(path = %path.display(), error = %e, "config file unreadable; the last good config keeps serving");
                    metrics::counter!("switchyard_config_reloads_total", "result" => "unreadable").increment(1);
                    unreadable = true;
                }
                continue;
            }
        };
        unreadable = false;
        let digest: [u8; 32] = Sha256::digest(&first).into();
        if control.seen() == Some(digest) {
            continue;
        }
        // Changed: wait until two reads agree, so a half-written file is not read mid-write.
        tokio::time::sleep(SETTLE).await;
        match tokio::fs::read(&path).await {
            Ok(second) if second == first => {
                // Reloads from these bytes (no third read), and records them as seen, refused
                // or not.
                let _ = control.reload_from("file", Some(second)).await;
            }
            _ => continue,
        }
    }
}
