//! Writing the snapshot `fetch` made where `-o` says: a file (replaced
//! atomically) or standard output. A failure is a [`SnapshotWriteError`]
//! (exit code 4) naming what the user gave, never a temporary file.

use std::io::{self, Write};
use std::path::Path;

use crate::atomic::{self, Access};

/// The snapshot could not be written (exit code 4, as for an output
/// directory that cannot be written).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the {what} to {target}: {reason}{hint}")]
pub(crate) struct SnapshotWriteError {
    /// What was written ("snapshot", "spec", "plan").
    what: &'static str,
    /// The path given with `-o`, or "standard output".
    target: String,
    /// Why, as the system says it. Not kept as the error's source: that
    /// would name the temporary file the user never gave.
    reason: String,
    /// What to do, starting with "; " (or empty).
    hint: String,
}

/// Writes `bytes` to `output` (`-`: standard output) and returns how to
/// name it in messages.
pub(crate) fn write(output: &Path, bytes: &[u8]) -> Result<String, SnapshotWriteError> {
    write_as(output, bytes, "snapshot", "-o")
}

/// Writes `bytes` (`what`: the "spec", the "plan") to `output`, given
/// with the option `option` (`-`: standard output), and returns how to
/// name it in messages.
pub(crate) fn write_as(
    output: &Path,
    bytes: &[u8],
    what: &'static str,
    option: &'static str,
) -> Result<String, SnapshotWriteError> {
    if output.as_os_str() == "-" {
        let mut stdout = io::stdout().lock();
        return match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
            Ok(()) => Ok(STDOUT.to_owned()),
            Err(e) => Err(SnapshotWriteError {
                what,
                target: STDOUT.to_owned(),
                reason: reason(&e),
                hint: hint(&e, None, what, option),
            }),
        };
    }
    match atomic::write_file(output, bytes, Access::Default) {
        Ok(()) => Ok(output.display().to_string()),
        Err(e) => Err(SnapshotWriteError {
            what,
            target: output.display().to_string(),
            reason: reason(&e),
            hint: hint(&e, Some(output), what, option),
        }),
    }
}

const STDOUT: &str = "standard output";

/// The system's reason, without the "at path …" tempfile adds when it
/// names its temporary file.
fn reason(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" at path \"") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// What to do about `error` writing to `file` (`None`: standard output).
fn hint(error: &io::Error, file: Option<&Path>, what: &str, option: &str) -> String {
    let other_path = format!("or choose another path with {option}");
    let what_to_do = match (error.kind(), file) {
        (io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded, Some(_)) => {
            format!("the disk is full: free some space and run again, {other_path}")
        }
        (io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded, None) => {
            "the disk it goes to is full: free some space and run again".to_owned()
        }
        (io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem, Some(path)) => {
            format!(
                "check that you may write {} and its directory, {other_path}",
                path.display()
            )
        }
        (io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem, None) => {
            "check that you may write where standard output goes".to_owned()
        }
        (io::ErrorKind::BrokenPipe, None) => {
            format!(
                "whatever reads standard output stopped before the end; the {what} is incomplete"
            )
        }
        (io::ErrorKind::NotFound | io::ErrorKind::NotADirectory, Some(path)) => {
            match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                Some(dir) if !dir.is_dir() => format!(
                    "the directory {} does not exist: create it, {other_path}",
                    dir.display()
                ),
                // atomic's own messages (a link to nothing) say what to do.
                _ => String::new(),
            }
        }
        _ => String::new(),
    };
    let unchanged = match file {
        Some(path) if std::fs::metadata(path).is_ok_and(|m| m.is_file()) => {
            format!("; {} is unchanged", path.display())
        }
        Some(_) => "; nothing was written".to_owned(),
        None => String::new(),
    };
    if what_to_do.is_empty() {
        unchanged
    } else {
        format!("; {what_to_do}{unchanged}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_file_is_never_named() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing").join("p.json");
        let error = write(&target, b"{}").unwrap_err().to_string();
        // The temporary file would be `.p.json.XXXXXX.tmp` beside the target.
        assert!(!error.contains(".p.json."), "{error}");
        assert!(
            error.starts_with(&format!(
                "cannot write the snapshot to {}: ",
                target.display()
            )),
            "{error}"
        );
        assert!(
            error.contains("does not exist: create it, or choose another path with -o"),
            "{error}"
        );
    }

    #[test]
    fn each_common_failure_says_what_to_do() {
        let file = Path::new("/srv/snapshots/p.json");
        let hint = |kind: io::ErrorKind, file| hint(&io::Error::from(kind), file, "snapshot", "-o");
        let full = hint(io::ErrorKind::StorageFull, Some(file));
        assert!(full.contains("free some space"), "{full}");
        assert!(full.ends_with("nothing was written"), "{full}");
        let denied = hint(io::ErrorKind::PermissionDenied, Some(file));
        assert!(
            denied.contains("check that you may write /srv/snapshots/p.json"),
            "{denied}"
        );
        let stdout = hint(io::ErrorKind::StorageFull, None);
        assert!(stdout.contains("free some space"), "{stdout}");
        assert!(!stdout.contains("-o"), "{stdout}");
        let pipe = hint(io::ErrorKind::BrokenPipe, None);
        assert!(pipe.contains("incomplete"), "{pipe}");
    }

    #[test]
    fn only_tempfiles_path_is_cut() {
        let error = io::Error::other(
            "No such file or directory (os error 2) at path \"/d/.p.json.x1.tmp\"",
        );
        assert_eq!(reason(&error), "No such file or directory (os error 2)");
        let error = io::Error::other("it is a directory; name a file");
        assert_eq!(reason(&error), "it is a directory; name a file");
    }
}
