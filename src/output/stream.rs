//! Writers that look at bytes as they stream into a file: [`Hashing`]
//! records what the manifest says of a file, [`Compared`] tells whether
//! the file on disk already holds the same bytes, so neither the new
//! content nor the old is ever held in memory whole.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What the manifest records of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Data rows, for CSV files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
}

/// A writer that hashes and counts what passes through it.
pub struct Hashing<W> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, and what the manifest records of what went through.
    pub fn finish(self, rows: Option<usize>) -> (W, FileInfo) {
        let info = FileInfo {
            sha256: hex::encode(self.sha.finalize()),
            bytes: self.bytes,
            rows,
        };
        (self.inner, info)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How the file on disk compares with the new content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnDisk {
    /// There is no file.
    Absent,
    /// It holds exactly the new content.
    Same,
    /// It holds something else; its SHA-256 when it was asked for.
    Differs(Option<String>),
}

/// A writer that passes bytes on to `inner` and compares them, as they
/// come, with the file on disk (read in step, from the page cache).
pub struct Compared<W> {
    inner: W,
    disk: Option<Disk>,
}

struct Disk {
    reader: BufReader<fs::File>,
    same: bool,
    /// Hashes what is read, when the old file's hash is wanted.
    sha: Option<Sha256>,
    scratch: Vec<u8>,
}

impl<W: Write> Compared<W> {
    /// Compares what is written with the regular file at `path`, if there
    /// is one; with `hash_old`, the old file's hash is computed too.
    pub fn new(inner: W, path: &Path, hash_old: bool) -> io::Result<Self> {
        let disk = match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => Some(Disk {
                reader: BufReader::with_capacity(1 << 16, fs::File::open(path)?),
                same: true,
                sha: hash_old.then(Sha256::new),
                scratch: Vec::new(),
            }),
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self { inner, disk })
    }

    /// The inner writer and how the disk compared. Reads what is left of
    /// the old file (it may be longer than the new content).
    pub fn finish(self) -> io::Result<(W, OnDisk)> {
        let Some(mut disk) = self.disk else {
            return Ok((self.inner, OnDisk::Absent));
        };
        let mut rest = [0u8; 8192];
        loop {
            let n = disk.reader.read(&mut rest)?;
            if n == 0 {
                break;
            }
            disk.same = false;
            match &mut disk.sha {
                Some(sha) => sha.update(&rest[..n]),
                None => break,
            }
        }
        let state = if disk.same {
            OnDisk::Same
        } else {
            OnDisk::Differs(disk.sha.map(|s| hex::encode(s.finalize())))
        };
        Ok((self.inner, state))
    }
}

impl<W: Write> Write for Compared<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(buf)?;
        if let Some(disk) = &mut self.disk
            && (disk.same || disk.sha.is_some())
        {
            disk.scratch.resize(buf.len(), 0);
            let read = read_up_to(&mut disk.reader, &mut disk.scratch)?;
            if let Some(sha) = &mut disk.sha {
                sha.update(&disk.scratch[..read]);
            }
            disk.same &= disk.scratch[..read] == *buf;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Fills `buf` as far as the reader allows; fewer bytes only at its end.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_writer_matches_a_plain_hash() {
        let mut w = Hashing::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, info) = w.finish(Some(1));
        assert_eq!(bytes, b"hello world");
        assert_eq!(info.sha256, hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(info.bytes, 11);
    }

    fn compare(old: Option<&[u8]>, new: &[&[u8]], hash_old: bool) -> OnDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        if let Some(old) = old {
            fs::write(&path, old).unwrap();
        }
        let mut w = Compared::new(io::sink(), &path, hash_old).unwrap();
        for chunk in new {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap().1
    }

    #[test]
    fn compares_with_the_file_on_disk_in_any_chunking() {
        assert_eq!(compare(None, &[b"a"], false), OnDisk::Absent);
        assert_eq!(compare(Some(b"abc"), &[b"a", b"bc"], false), OnDisk::Same);
        assert_eq!(compare(Some(b""), &[], false), OnDisk::Same);
        assert_eq!(
            compare(Some(b"abc"), &[b"ab"], false),
            OnDisk::Differs(None),
            "old is longer"
        );
        assert_eq!(
            compare(Some(b"ab"), &[b"ab", b"c"], false),
            OnDisk::Differs(None),
            "new is longer"
        );
        assert_eq!(
            compare(Some(b"abd"), &[b"a", b"bc"], false),
            OnDisk::Differs(None)
        );
        let old_hash = hex::encode(Sha256::digest(b"xyz-and-more"));
        assert_eq!(
            compare(Some(b"xyz-and-more"), &[b"xy", b"q"], true),
            OnDisk::Differs(Some(old_hash))
        );
    }
}
