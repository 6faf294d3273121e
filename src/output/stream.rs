//! Writers that look at bytes as they stream into a file: [`Hashing`]
//! records what the manifest says of a file, [`Compared`] tells whether
//! the file on disk already holds the same bytes, so neither the new
//! content nor the old is ever held in memory whole.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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

/// A writer that compares the bytes written, as they come, with the file
/// on disk (read in step, from the page cache), and writes a new file only
/// when they differ: at the first difference it creates `staged`, copies
/// the prefix that matched from the old file and goes on writing there. An
/// unchanged file is read, never written.
pub struct Compared {
    /// The old file, while everything so far matched it.
    disk: Option<BufReader<fs::File>>,
    /// Whether there was an old file.
    existed: bool,
    /// Bytes that matched the old file.
    matched: u64,
    differs: bool,
    /// Where new content goes once it differs; none to compare only.
    staged: Option<PathBuf>,
    out: Option<BufWriter<fs::File>>,
    scratch: Vec<u8>,
}

const BUFFER: usize = 1 << 16;

impl Compared {
    /// Compares what is written with the regular file at `target`, if there
    /// is one, writing to `staged` (when given) once they differ.
    pub fn new(target: &Path, staged: Option<PathBuf>) -> io::Result<Self> {
        let disk = match fs::symlink_metadata(target) {
            Ok(meta) if meta.is_file() => {
                Some(BufReader::with_capacity(BUFFER, fs::File::open(target)?))
            }
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self {
            existed: disk.is_some(),
            disk,
            matched: 0,
            differs: false,
            staged,
            out: None,
            scratch: Vec::new(),
        })
    }

    /// The new content differs from the old from here on: start the staged
    /// file with the prefix that matched, read again from the old file.
    fn diverge(&mut self) -> io::Result<()> {
        self.differs = true;
        let disk = self.disk.take();
        let Some(path) = &self.staged else {
            return Ok(());
        };
        let mut out = BufWriter::with_capacity(BUFFER, fs::File::create(path)?);
        if let Some(disk) = disk {
            let mut old = disk.into_inner();
            old.seek(SeekFrom::Start(0))?;
            let copied = io::copy(&mut (&mut old).take(self.matched), &mut out)?;
            if copied != self.matched {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the old file shrank while it was being read",
                ));
            }
        }
        self.out = Some(out);
        Ok(())
    }

    /// How the disk compared. Reads one byte past the new content (the old
    /// file may be longer) and closes the staged file, if one was written.
    pub fn finish(mut self) -> io::Result<OnDisk> {
        if let Some(disk) = &mut self.disk
            && !self.differs
        {
            let mut extra = [0u8; 1];
            if read_up_to(disk, &mut extra)? > 0 {
                self.diverge()?;
            }
        } else if !self.differs {
            self.diverge()?;
        }
        if let Some(out) = self.out.take() {
            out.into_inner().map_err(io::IntoInnerError::into_error)?;
        }
        Ok(match (self.existed, self.differs) {
            (false, _) => OnDisk::Absent,
            (true, false) => OnDisk::Same,
            (true, true) => OnDisk::Differs(None),
        })
    }
}

impl Write for Compared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.differs {
            match &mut self.disk {
                Some(disk) => {
                    self.scratch.resize(buf.len(), 0);
                    let read = read_up_to(disk, &mut self.scratch)?;
                    if self.scratch[..read] == *buf {
                        self.matched += buf.len() as u64;
                        return Ok(buf.len());
                    }
                    self.diverge()?;
                }
                None => self.diverge()?,
            }
        }
        if let Some(out) = &mut self.out {
            out.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
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

    /// How `new` (written in these chunks) compares with `old`, and what
    /// was staged.
    fn compare(old: Option<&[u8]>, new: &[&[u8]]) -> (OnDisk, Option<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let staged = dir.path().join("staged");
        if let Some(old) = old {
            fs::write(&path, old).unwrap();
        }
        let mut w = Compared::new(&path, Some(staged.clone())).unwrap();
        for chunk in new {
            w.write_all(chunk).unwrap();
        }
        let state = w.finish().unwrap();
        (state, fs::read(&staged).ok())
    }

    #[test]
    fn compares_with_the_file_on_disk_in_any_chunking_and_writes_only_a_difference() {
        let differs = |new: &[u8]| (OnDisk::Differs(None), Some(new.to_vec()));
        assert_eq!(
            compare(None, &[b"a"]),
            (OnDisk::Absent, Some(b"a".to_vec()))
        );
        assert_eq!(compare(None, &[]), (OnDisk::Absent, Some(Vec::new())));
        assert_eq!(compare(Some(b"abc"), &[b"a", b"bc"]), (OnDisk::Same, None));
        assert_eq!(compare(Some(b""), &[]), (OnDisk::Same, None));
        assert_eq!(
            compare(Some(b"abc"), &[b"ab"]),
            differs(b"ab"),
            "old is longer"
        );
        assert_eq!(
            compare(Some(b"ab"), &[b"ab", b"c"]),
            differs(b"abc"),
            "new is longer"
        );
        assert_eq!(compare(Some(b"abd"), &[b"a", b"bc"]), differs(b"abc"));
        assert_eq!(compare(Some(b"xyz"), &[b"q", b"yz"]), differs(b"qyz"));
    }

    #[test]
    fn a_long_matching_prefix_is_copied_into_the_staged_file() {
        let old: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut new = old.clone();
        new[1_000_000] ^= 1;
        let chunks: Vec<&[u8]> = new.chunks(4096).collect();
        assert_eq!(
            compare(Some(&old), &chunks),
            (OnDisk::Differs(None), Some(new.clone()))
        );
    }
}
