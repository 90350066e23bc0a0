//! What a mount last synced, kept in a JSON file under `<session>/state/` (outside every box) so
//! the next host of the session picks up where this one stopped.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) struct StateFile {
    path: PathBuf,
    /// The bytes last written (or read), so an unchanged state is not rewritten after every
    /// tool call.
    last: Vec<u8>,
}

impl StateFile {
    /// Opens the state at `path` and reads its value (the default when absent or unreadable:
    /// the mount then syncs from scratch, which is safe, only slower).
    pub(crate) fn open<T: DeserializeOwned + Default>(path: PathBuf) -> (Self, T) {
        let last = std::fs::read(&path).unwrap_or_default();
        let value = serde_json::from_slice(&last).unwrap_or_default();
        (Self { path, last }, value)
    }

    /// Writes `value` when it differs from what the file holds (temporary file, then rename).
    pub(crate) fn save<T: Serialize>(&mut self, value: &T) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        if bytes == self.last {
            return Ok(());
        }
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &self.path)?;
        self.last = bytes;
        Ok(())
    }
}
