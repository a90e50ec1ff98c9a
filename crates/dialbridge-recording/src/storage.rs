//! Where recordings are kept: local files under the data directory, by day and enterprise
//! (`recordings/<YYYYMMDD>/<enterpriseId>/<name>.wav`), owner-only. Object storage is a later
//! [`RecordingStorage`]: the recorder still writes locally and hands a finished file over.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::RecordingError;

/// A recording's place: its day (`YYYYMMDD`, the enterprise's local date of the call's start,
/// as in the legacy download URL), its enterprise, and its file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordingKey {
    pub day: String,
    pub enterprise: String,
    pub file_name: String,
}

impl RecordingKey {
    /// Checks each part, so a key built from a URL can never leave the recordings directory.
    pub fn new(day: &str, enterprise: &str, file_name: &str) -> Result<Self, RecordingError> {
        let day_ok = day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit());
        let enterprise_ok =
            !enterprise.is_empty() && enterprise.len() <= 12 && enterprise.bytes().all(|b| b.is_ascii_digit());
        let name_ok = file_name.len() <= 200
            && file_name.ends_with(".wav")
            && !file_name.starts_with('.')
            && file_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if day_ok && enterprise_ok && name_ok {
            Ok(Self {
                day: day.to_owned(),
                enterprise: enterprise.to_owned(),
                file_name: file_name.to_owned(),
            })
        } else {
            Err(RecordingError::BadKey(format!("{day}/{enterprise}/{file_name}")))
        }
    }

    /// `<day>/<enterprise>/<name>`: how the store keeps it.
    pub fn relative(&self) -> String {
        format!("{}/{}/{}", self.day, self.enterprise, self.file_name)
    }

    pub fn parse(relative: &str) -> Result<Self, RecordingError> {
        let mut parts = relative.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(day), Some(enterprise), Some(name)) => Self::new(day, enterprise, name),
            _ => Err(RecordingError::BadKey(relative.to_owned())),
        }
    }
}

/// Where finished recordings are read and deleted.
pub trait RecordingStorage: Send + Sync {
    fn open(&self, key: &RecordingKey) -> io::Result<File>;
    /// Deletes the recording and its sidecar; deleting one that is gone is no error.
    fn delete(&self, key: &RecordingKey) -> io::Result<()>;
}

#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Recordings under `root` (created owner-only when missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&root)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, key: &RecordingKey) -> PathBuf {
        self.root.join(&key.day).join(&key.enterprise).join(&key.file_name)
    }

    pub fn sidecar_of(&self, key: &RecordingKey) -> PathBuf {
        sidecar_path(&self.path_of(key))
    }
}

/// `<name>.json` beside `<name>.wav`.
pub(crate) fn sidecar_path(wav: &Path) -> PathBuf {
    wav.with_extension("json")
}

/// Creates a new file owner-only, and its directories.
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

impl RecordingStorage for LocalStorage {
    fn open(&self, key: &RecordingKey) -> io::Result<File> {
        File::open(self.path_of(key))
    }

    fn delete(&self, key: &RecordingKey) -> io::Result<()> {
        for path in [self.path_of(key), self.sidecar_of(key)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}
