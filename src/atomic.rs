//! Writing one file so that readers see its old content or its new, never
//! half of either, and taking locks so that runs sharing a file or a
//! directory take turns. Every writer of ts-principals goes through here.
//!
//! [`write_file`] writes a temporary file beside the target and renames it
//! over the target. It respects what the target is:
//! - a regular file is replaced, keeping its permissions (a snapshot a user
//!   made private stays private);
//! - a symbolic link is followed and the file it points to is replaced, so
//!   the link stays a link;
//! - a FIFO, character or block device (`/dev/stdout`, a named pipe) is
//!   written to directly: there is nothing to replace;
//! - a directory, or a link to nothing, is refused with an error saying so.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who may read a newly created file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The process's default (0666 less the umask).
    Default,
    /// The owner only (0600), for files that name credentials' sources.
    Private,
}

/// Writes `bytes` to `path` atomically (see the module docs). The new
/// content is flushed to disk before it replaces the old.
pub fn write_file(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let target = match fs::symlink_metadata(path) {
        // A link to a pipe or device (`/dev/stdout` on a pipe ends in a
        // `pipe:[…]` that has no path to resolve): write through it.
        Ok(meta)
            if meta.file_type().is_symlink()
                && fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) =>
        {
            return write_through(path, bytes);
        }
        Ok(meta) if meta.file_type().is_symlink() => resolve_link(path)?,
        Ok(meta) if meta.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a directory; name a file",
            ));
        }
        Ok(meta) if !meta.is_file() => return write_through(path, bytes),
        Ok(_) => path.to_path_buf(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let existing = fs::metadata(&target).ok();
    if existing.as_ref().is_some_and(fs::Metadata::is_dir) {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a symbolic link to a directory; name a file",
        ));
    }
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match (access, &existing) {
            (Access::Private, _) => Some(0o600),
            (Access::Default, Some(meta)) => Some(meta.permissions().mode() & 0o7777),
            // What creating the file in place would give it (a temporary
            // file is private).
            (Access::Default, None) => Some(0o666 & !umask()),
        };
        if let Some(mode) = mode {
            builder.permissions(fs::Permissions::from_mode(mode));
        }
    }
    #[cfg(not(unix))]
    let _ = access;
    let mut file = builder.tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

/// The process's file mode creation mask (Linux reports it in
/// /proc/self/status; elsewhere the usual 022 is assumed).
#[cfg(unix)]
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// Where a symbolic link finally points; an error when that is nowhere.
fn resolve_link(path: &Path) -> io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(target) => Ok(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let points_to = fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "it is a symbolic link to {points_to}, which does not exist; \
                     create the target or remove the link"
                ),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Writes into a pipe or device as it is.
fn write_through(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(bytes)?;
    file.flush()
}

/// An exclusive lock on a file or directory, held until dropped. Locks
/// are advisory (`flock`): they keep ts-principals runs apart, and are
/// released by the kernel when a run dies, however it dies.
#[derive(Debug)]
pub struct Lock {
    _file: fs::File,
}

/// What to do when another run holds the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Wait for it, calling the notice first.
    Block,
    /// Fail at once with [`io::ErrorKind::WouldBlock`].
    NoWait,
}

impl Lock {
    /// Locks `path` (an existing file or directory). When another run
    /// holds it, `notice` is called once and then, with [`Wait::Block`],
    /// the lock is waited for.
    pub fn acquire(path: &Path, wait: Wait, notice: impl FnOnce()) -> io::Result<Lock> {
        let file = fs::File::open(path)?;
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        notice();
        match wait {
            Wait::NoWait => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "another ts-principals run holds it",
            )),
            Wait::Block => {
                file.lock()?;
                Ok(Lock { _file: file })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_file_keeping_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_file(&path, b"one", Access::Default).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A new file gets what creating it in place would give it.
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o666 & !umask(), "{mode:o}");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
            write_file(&path, b"two", Access::Default).unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
            write_file(&path, b"three", Access::Private).unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(fs::read(&path).unwrap(), b"three");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_file(&link, b"new", Access::Default).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");

        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("nowhere/x"), &dangling).unwrap();
        let error = write_file(&dangling, b"x", Access::Default).unwrap_err();
        assert!(error.to_string().contains("does not exist"), "{error}");
        assert!(
            fs::symlink_metadata(&dangling)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_written_to_not_replaced() {
        write_file(Path::new("/dev/null"), b"x", Access::Default).unwrap();
        assert!(!fs::metadata("/dev/null").unwrap().is_file());
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_file(dir.path(), b"x", Access::Default).unwrap_err();
        assert!(error.to_string().contains("directory"), "{error}");
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(dir.path(), &link).unwrap();
            let error = write_file(&link, b"x", Access::Default).unwrap_err();
            assert!(error.to_string().contains("link to a directory"), "{error}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_a_device_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        write_file(&link, b"x", Access::Default).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(!fs::metadata("/dev/null").unwrap().is_file());
    }

    #[test]
    fn a_second_lock_waits_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), Wait::NoWait, || panic!("free")).unwrap();
        let mut told = false;
        let error = Lock::acquire(dir.path(), Wait::NoWait, || told = true).unwrap_err();
        assert!(told);
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || Lock::acquire(&path, Wait::Block, || ()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "waits while the lock is held");
        drop(first);
        waiter.join().unwrap().unwrap();
    }
}
