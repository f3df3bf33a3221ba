//! Lock files that serialise refresh-token rotations across processes of one user.
//!
//! A lock file lives in a directory private to the user (created 0700, owned by this user,
//! not a symbolic link), is opened without following symbolic links and must be a regular
//! file owned by this user. Waiting for it is bounded by [`LOCK_WAIT`]: a lock that another
//! process holds longer fails with [`StoreError::LockTimeout`] instead of hanging every token
//! fetch.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::Path;
use std::time::Duration;

use super::{RefreshTokenLock, StoreError, StoreName};

/// How long a rotation waits for another holder of its lock. A rotation holds it for one
/// refresh request (at most about 30 s with its timeouts), so this is generous.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Time between two tries while another process holds the lock.
const POLL: Duration = Duration::from_millis(50);

/// The directory of named locks: `.ralio/locks` in this user's home directory as the password
/// database records it (where it has none that exists, `HOME`). Never from `XDG_RUNTIME_DIR`,
/// `RALIO_CONFIG_DIR` or `HOME` when the database answers: a cron job or a `sudo -u` shell (no
/// runtime directory, another `HOME`) and the desktop session of the same user must meet at
/// the same lock, one per slot. Never a shared directory such as `/tmp`.
#[cfg(feature = "keyring")]
fn default_lock_dir(store: &StoreName) -> Result<std::path::PathBuf, StoreError> {
    #[cfg(unix)]
    if let Some(home) = account_home() {
        return Ok(home.join(".ralio").join("locks"));
    }
    match std::env::home_dir() {
        Some(home) => Ok(home.join(".ralio").join("locks")),
        None => Err(StoreError::Config {
            store: store.clone(),
            reason: "no directory for the refresh-token lock: this user has no home directory"
                .to_owned(),
        }),
    }
}

/// This user's home directory from the password database (`getpwuid_r`), when it names a
/// directory that exists.
#[cfg(all(unix, feature = "keyring"))]
fn account_home() -> Option<std::path::PathBuf> {
    use std::ffi::{CStr, OsStr};
    use std::os::unix::ffi::OsStrExt as _;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `passwd` is plain data for getpwuid_r to fill; `buf` outlives every use of
        // the pointers it stores in `entry` (they are read below, before `buf` changes).
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                current_uid(),
                &mut entry,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so `pw_dir` points to a NUL-terminated string in `buf`.
        let dir = unsafe { CStr::from_ptr(entry.pw_dir) };
        let dir = std::path::PathBuf::from(OsStr::from_bytes(dir.to_bytes()));
        return (dir.is_absolute() && dir.is_dir()).then_some(dir);
    }
}

/// Takes the lock named `name` (hashed into a file name) in `dir`, creating `dir` private.
// Named locks serve the keyring store (its tests run in every build).
#[cfg_attr(not(feature = "keyring"), allow(dead_code))]
pub(crate) async fn lock_named_in(
    dir: &Path,
    name: &str,
    store: &StoreName,
) -> Result<RefreshTokenLock, StoreError> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    ensure_owned_private_dir(dir, store)?;
    lock_file(&dir.join(format!("ralio-{hex}.lock")), store).await
}

/// Creates `dir` (and its parents) with mode 0700 and checks it: a directory (not a symbolic
/// link) owned by this user. A group- or world-accessible one of ours is made 0700.
// Named locks serve the keyring store (its tests run in every build).
#[cfg_attr(not(feature = "keyring"), allow(dead_code))]
pub(crate) fn ensure_owned_private_dir(dir: &Path, store: &StoreName) -> Result<(), StoreError> {
    let io_err = |action: &str, source| StoreError::Io {
        store: store.clone(),
        action: format!("{action} {}", dir.display()),
        source,
    };
    let refuse = |why: String| StoreError::Config {
        store: store.clone(),
        reason: format!(
            "the lock directory {} {why}; remove it and try again",
            dir.display()
        ),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err("create", e))?;
        let meta = fs::symlink_metadata(dir).map_err(|e| io_err("inspect", e))?;
        if !meta.file_type().is_dir() {
            return Err(refuse(
                "is not a directory (a symbolic link or a file)".to_owned(),
            ));
        }
        if meta.uid() != current_uid() {
            return Err(refuse(format!(
                "belongs to another user (uid {})",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_err("make private", e))?;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = refuse;
        fs::create_dir_all(dir).map_err(|e| io_err("create", e))?;
    }
    Ok(())
}

/// Takes an exclusive lock on `path` (created 0600 if missing, never through a symbolic
/// link), waiting up to [`LOCK_WAIT`] for other holders (in this process or others). The lock
/// is released when the value is dropped.
pub(crate) async fn lock_file(
    path: &Path,
    store: &StoreName,
) -> Result<RefreshTokenLock, StoreError> {
    let io_err = |source| StoreError::Io {
        store: store.clone(),
        action: format!("lock {}", path.display()),
        source,
    };
    let file = open_lock_file(path).map_err(io_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.file_type().is_file() || meta.uid() != current_uid() {
            return Err(StoreError::Config {
                store: store.clone(),
                reason: format!(
                    "the lock file {} is not a regular file of this user; remove it and try again",
                    path.display()
                ),
            });
        }
    }
    // Try without blocking, and sleep on the runtime between tries: a blocked thread could
    // not be given up on, and the wait needs a bound.
    let start = tokio::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RefreshTokenLock::new(file)),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(source)) => return Err(io_err(source)),
        }
        let waited = start.elapsed();
        if waited >= LOCK_WAIT {
            return Err(StoreError::LockTimeout {
                store: store.clone(),
                path: path.to_path_buf(),
                waited,
            });
        }
        tokio::time::sleep(POLL.min(LOCK_WAIT - waited)).await;
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Takes the lock named `name` in the per-user lock directory (`~/.ralio/locks` of the user's
/// home directory, whatever the environment says).
#[cfg(feature = "keyring")]
pub(super) async fn lock_named(
    name: &str,
    store: &StoreName,
) -> Result<RefreshTokenLock, StoreError> {
    let dir = default_lock_dir(store)?;
    lock_named_in(&dir, name, store).await
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use super::*;

    /// Takes the lock `name` in `dir`, as a store named "test store".
    async fn lock(dir: &Path, name: &str) -> Result<RefreshTokenLock, StoreError> {
        lock_named_in(dir, name, &crate::store::StoreName::other("test store")).await
    }

    /// Takes and releases the lock `name` in `dir`, and returns the path of its file.
    async fn lock_file(dir: &Path, name: &str) -> std::path::PathBuf {
        drop(lock(dir, name).await.unwrap());
        fs::read_dir(dir).unwrap().next().unwrap().unwrap().path()
    }

    #[tokio::test]
    async fn the_lock_directory_is_made_private_and_the_lock_works() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("locks");
        // A directory of ours that others may enter (a wrong umask, an old version).
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let held = lock(&dir, "a").await.unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        drop(held);
        let files: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1);
        let file = files[0].as_ref().unwrap().path();
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    }

    #[tokio::test]
    async fn a_planted_symbolic_link_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("locks");
        fs::create_dir(&dir).unwrap();
        // Find the name the lock will use, then plant a link there to a file elsewhere.
        let name = lock_file(&dir, "b").await;
        fs::remove_file(&name).unwrap();
        let target = tmp.path().join("victim");
        std::os::unix::fs::symlink(&target, &name).unwrap();
        let err = lock(&dir, "b").await.unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(
            !target.exists(),
            "the lock followed the link and created its target"
        );
    }

    #[tokio::test]
    async fn a_directory_link_or_a_foreign_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("locks");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = lock(&link, "c").await.unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");

        // Another user's directory: only root can make one here.
        if current_uid() == 0 {
            let foreign = tmp.path().join("foreign");
            fs::create_dir(&foreign).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            let err = lock(&foreign, "c").await.unwrap_err();
            assert!(err.to_string().contains("belongs to another user"), "{err}");
            // And a lock file planted by another user in our own directory.
            let ours = tmp.path().join("ours");
            let file = lock_file(&ours, "d").await;
            std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
            let err = lock(&ours, "d").await.unwrap_err();
            assert!(
                err.to_string().contains("not a regular file of this user"),
                "{err}"
            );
        }
    }

    // The paused clock runs the 60 s wait at once and makes the test deterministic.
    #[tokio::test(start_paused = true)]
    async fn a_lock_held_elsewhere_times_out_with_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("locks");
        let path = lock_file(&dir, "e").await;
        // Another open file description, as another process would have.
        let holder = File::open(&path).unwrap();
        holder.lock().unwrap();
        let start = tokio::time::Instant::now();
        let err = lock(&dir, "e").await.unwrap_err();
        assert!(start.elapsed() >= LOCK_WAIT);
        let StoreError::LockTimeout { waited, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(*waited >= LOCK_WAIT);
        let text = err.to_string();
        assert!(text.contains("held by another process"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        // Released: the next taker gets it.
        drop(holder);
        drop(lock(&dir, "e").await.unwrap());
    }
}
