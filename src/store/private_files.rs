//! Files that hold secrets: read only when no other user may access them, directories made
//! private, writes that land whole (a temporary file renamed into place, the directory synced).
//! The file store keeps its identity, keys and refresh tokens this way; the environment store
//! reads a key file through the same check.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::{StoreError, StoreName};

pub(super) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(super) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a file holding a secret, refusing it when group or others may access it.
pub(crate) fn read_secret_file(
    path: &Path,
    store: &StoreName,
) -> Result<Option<secrecy::SecretBox<Vec<u8>>>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                store: store.clone(),
                action: format!("open {}", path.display()),
                source,
            });
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file
            .metadata()
            .map_err(|source| StoreError::Io {
                store: store.clone(),
                action: format!("inspect {}", path.display()),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::InsecurePermissions {
                store: store.clone(),
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes).map_err(|source| StoreError::Io {
        store: store.clone(),
        action: format!("read {}", path.display()),
        source,
    })?;
    Ok(Some(secrecy::SecretBox::new(Box::new(bytes))))
}

/// Creates `dir` (and parents) and makes it private to the owner (0700).
pub(super) fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // `mode` is masked by the umask and skipped for directories that already existed.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, created with
/// mode 0600 before any byte is written, flushed, renamed over `path`, then the directory is
/// flushed so the rename survives a crash. With `overwrite` false an existing `path` is left
/// alone and the error kind is `AlreadyExists`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if overwrite {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
