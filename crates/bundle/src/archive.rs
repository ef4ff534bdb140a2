//! The container: reading an uncompressed ustar archive or a directory into
//! checked `(path, bytes)` entries, and writing a deterministic archive.
//!
//! Reading walks the 512-byte blocks itself (the `tar` crate parses each
//! header) so that every byte is accounted for: a partial block, an entry
//! cut short and a missing end-of-archive marker are all refused as
//! truncation, and data after the marker is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::error::PathFault;
use crate::error::{echo, BundleError};
use crate::limits::Limits;
use crate::path;

/// The tar block size.
const BLOCK: usize = 512;

/// The entries of a bundle, paths checked and unique.
pub(crate) type Files = BTreeMap<String, Vec<u8>>;

/// Collects entries and enforces counts, sizes and uniqueness.
struct Collector<'a> {
    limits: &'a Limits,
    files: Files,
    dirs: BTreeSet<String>,
    entries: usize,
    total: u64,
}

impl<'a> Collector<'a> {
    fn new(limits: &'a Limits) -> Collector<'a> {
        Collector {
            limits,
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
            entries: 0,
            total: 0,
        }
    }

    fn count(&mut self) -> Result<(), BundleError> {
        self.entries = self.entries.saturating_add(1);
        if self.entries > self.limits.max_entries {
            return Err(BundleError::TooManyEntries {
                max: self.limits.max_entries,
            });
        }
        Ok(())
    }

    fn check_file_size(&self, path: &str, len: u64) -> Result<(), BundleError> {
        if len > self.limits.max_file_bytes as u64 {
            return Err(BundleError::EntryTooLarge {
                path: echo(path.as_bytes()),
                len,
                max: self.limits.max_file_bytes as u64,
            });
        }
        Ok(())
    }

    fn add_dir(&mut self, path: &str) -> Result<(), BundleError> {
        if self.files.contains_key(path) || !self.dirs.insert(path.to_owned()) {
            return Err(BundleError::DuplicateEntry(echo(path.as_bytes())));
        }
        Ok(())
    }

    fn add_file(&mut self, path: &str, data: Vec<u8>) -> Result<(), BundleError> {
        self.check_file_size(path, data.len() as u64)?;
        if self.dirs.contains(path) || self.files.contains_key(path) {
            return Err(BundleError::DuplicateEntry(echo(path.as_bytes())));
        }
        self.total = self.total.saturating_add(data.len() as u64);
        if self.total > self.limits.max_bundle_bytes as u64 {
            return Err(BundleError::TooLarge {
                len: self.total,
                max: self.limits.max_bundle_bytes as u64,
            });
        }
        self.files.insert(path.to_owned(), data);
        Ok(())
    }

    fn finish(self) -> Result<Files, BundleError> {
        for path in self.files.keys() {
            if let Some(parent) = path::ancestors(path).find(|a| self.files.contains_key(*a)) {
                return Err(BundleError::UnsafePath {
                    path: echo(parent.as_bytes()),
                    fault: PathFault::FileAsDirectory,
                });
            }
        }
        Ok(self.files)
    }
}

/// Reads an uncompressed ustar archive.
pub(crate) fn read_tar(bytes: &[u8], limits: &Limits) -> Result<Files, BundleError> {
    if bytes.len() > limits.max_bundle_bytes {
        return Err(BundleError::TooLarge {
            len: bytes.len() as u64,
            max: limits.max_bundle_bytes as u64,
        });
    }
    if bytes.len() % BLOCK != 0 {
        return Err(BundleError::Truncated(
            "length is not a multiple of 512 bytes",
        ));
    }
    let mut out = Collector::new(limits);
    let mut offset = 0usize;
    loop {
        let block =
            block_at(bytes, offset).ok_or(BundleError::Truncated("no end-of-archive marker"))?;
        if is_zero(block) {
            let next = offset.saturating_add(BLOCK);
            let second = block_at(bytes, next).ok_or(BundleError::Truncated(
                "end-of-archive marker is incomplete",
            ))?;
            if !is_zero(second) {
                return Err(BundleError::MalformedArchive(format!(
                    "zero block followed by data at offset {offset}"
                )));
            }
            let rest = bytes.get(next.saturating_add(BLOCK)..).unwrap_or(&[]);
            if !is_zero(rest) {
                return Err(BundleError::MalformedArchive(
                    "data after the end-of-archive marker".to_owned(),
                ));
            }
            return out.finish();
        }
        let header = header_of(block);
        check_header(&header, offset)?;
        out.count()?;
        let raw_path = raw_path(&header)?;
        let kind = header.entry_type();
        let size = header.entry_size().map_err(|_| {
            BundleError::MalformedArchive(format!("bad size field at offset {offset}"))
        })?;
        let data_start = offset
            .checked_add(BLOCK)
            .ok_or(BundleError::Truncated("entry is cut short"))?;
        match kind {
            EntryType::Directory => {
                let trimmed = raw_path.strip_suffix(b"/").unwrap_or(&raw_path);
                let checked = path::check(trimmed)?;
                if size != 0 {
                    return Err(BundleError::MalformedArchive(format!(
                        "directory `{checked}` has a size"
                    )));
                }
                out.add_dir(checked)?;
                offset = data_start;
            }
            EntryType::Regular => {
                let checked = path::check(&raw_path)?;
                out.check_file_size(checked, size)?;
                // INVARIANT: size <= max_file_bytes, which is a usize.
                let len = usize::try_from(size)
                    .map_err(|_| BundleError::Truncated("entry is cut short"))?;
                let data_end = data_start
                    .checked_add(len)
                    .ok_or(BundleError::Truncated("entry is cut short"))?;
                let data = bytes
                    .get(data_start..data_end)
                    .ok_or(BundleError::Truncated("entry is cut short"))?;
                out.add_file(checked, data.to_vec())?;
                let padded = len.div_ceil(BLOCK).saturating_mul(BLOCK);
                offset = data_start
                    .checked_add(padded)
                    .ok_or(BundleError::Truncated("entry is cut short"))?;
            }
            other => {
                return Err(BundleError::UnsupportedEntry {
                    path: echo(&raw_path),
                    kind: kind_name(other),
                })
            }
        }
    }
}

fn block_at(bytes: &[u8], offset: usize) -> Option<&[u8]> {
    bytes.get(offset..offset.checked_add(BLOCK)?)
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

fn header_of(block: &[u8]) -> Header {
    let mut header = Header::new_old();
    for (to, from) in header.as_mut_bytes().iter_mut().zip(block) {
        *to = *from;
    }
    header
}

fn check_header(header: &Header, offset: usize) -> Result<(), BundleError> {
    let mut recomputed = header.clone();
    recomputed.set_cksum();
    let stored = header.cksum().ok();
    if stored.is_none() || stored != recomputed.cksum().ok() {
        return Err(BundleError::MalformedArchive(format!(
            "bad header checksum at offset {offset}"
        )));
    }
    if header.as_ustar().is_none() && header.as_gnu().is_none() {
        return Err(BundleError::MalformedArchive(format!(
            "header at offset {offset} is not ustar"
        )));
    }
    Ok(())
}

/// The raw path of an entry: ustar `prefix/name`, or the GNU `name`. Bytes
/// after the terminating NUL of a field must be NUL too.
fn raw_path(header: &Header) -> Result<Vec<u8>, BundleError> {
    let name = field(&header.as_old().name)?;
    let prefix = match header.as_ustar() {
        Some(ustar) => field(&ustar.prefix)?,
        None => &[],
    };
    let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        path.extend_from_slice(prefix);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    Ok(path)
}

fn field(bytes: &[u8]) -> Result<&[u8], BundleError> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (text, rest) = bytes.split_at(end);
    if !is_zero(rest) {
        return Err(BundleError::UnsafePath {
            path: echo(bytes),
            fault: PathFault::Nul,
        });
    }
    Ok(text)
}

fn kind_name(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Link => "hard link",
        EntryType::Symlink => "symbolic link",
        EntryType::Char => "character device",
        EntryType::Block => "block device",
        EntryType::Fifo => "fifo",
        EntryType::Continuous => "contiguous file",
        EntryType::XHeader => "pax extended header",
        EntryType::XGlobalHeader => "pax global header",
        EntryType::GNULongName => "gnu long name header",
        EntryType::GNULongLink => "gnu long link header",
        EntryType::GNUSparse => "gnu sparse file",
        _ => "entry of an unknown type",
    }
}

/// Writes a deterministic ustar archive of `files` (in the given order):
/// regular files only, mode 0644, uid and gid 0, mtime 0, no user or group
/// names, then the end-of-archive marker.
pub(crate) fn write_tar<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<u8>, BundleError> {
    let io = |e| BundleError::Io {
        path: "(archive)".to_owned(),
        source: e,
    };
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let checked = path::check(path.as_bytes())?;
        let mut header = Header::new_ustar();
        header
            .set_path(checked)
            .map_err(|_| BundleError::UnsafePath {
                path: echo(checked.as_bytes()),
                fault: PathFault::TooLong,
            })?;
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(EntryType::Regular);
        if let Some(ustar) = header.as_ustar_mut() {
            ustar.set_device_major(0);
            ustar.set_device_minor(0);
        }
        header.set_cksum();
        builder.append(&header, data).map_err(io)?;
    }
    builder.into_inner().map_err(io)
}

/// Reads a directory laid out like an archive. With `skip_reserved`, the
/// top-level `manifest.json`, `signatures/` and `root/` are left out (used
/// when building a new bundle from a source directory).
pub(crate) fn read_dir(
    dir: &Path,
    limits: &Limits,
    skip_reserved: bool,
) -> Result<Files, BundleError> {
    let mut out = Collector::new(limits);
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let listing = fs::read_dir(&abs).map_err(|e| BundleError::io(&abs, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| BundleError::io(&abs, e))?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|name| BundleError::UnsafePath {
                    path: echo(name.to_string_lossy().as_bytes()),
                    fault: PathFault::NotUtf8,
                })?;
            if rel.is_empty()
                && skip_reserved
                && matches!(name.as_str(), "manifest.json" | "signatures" | "root")
            {
                continue;
            }
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let checked = path::check(child_rel.as_bytes())?;
            let child_abs = entry.path();
            let meta =
                fs::symlink_metadata(&child_abs).map_err(|e| BundleError::io(&child_abs, e))?;
            out.count()?;
            if meta.file_type().is_symlink() {
                return Err(BundleError::UnsupportedEntry {
                    path: echo(checked.as_bytes()),
                    kind: "symbolic link",
                });
            } else if meta.is_dir() {
                out.add_dir(checked)?;
                stack.push((child_abs, child_rel));
            } else if meta.is_file() {
                out.check_file_size(checked, meta.len())?;
                let data = read_file(&child_abs, &meta, limits.max_file_bytes)?;
                out.add_file(checked, data)?;
            } else {
                return Err(BundleError::UnsupportedEntry {
                    path: echo(checked.as_bytes()),
                    kind: "special file",
                });
            }
        }
    }
    out.finish()
}

/// Reads at most `max + 1` bytes of a regular file, checking (on Unix) that
/// the opened file is the one whose metadata was checked, so a file swapped
/// for a symlink in between is refused.
fn read_file(path: &Path, checked: &fs::Metadata, max: usize) -> Result<Vec<u8>, BundleError> {
    let file = fs::File::open(path).map_err(|e| BundleError::io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let opened = file.metadata().map_err(|e| BundleError::io(path, e))?;
        if opened.dev() != checked.dev() || opened.ino() != checked.ino() || !opened.is_file() {
            return Err(BundleError::UnsupportedEntry {
                path: echo(path.to_string_lossy().as_bytes()),
                kind: "file replaced while reading",
            });
        }
    }
    #[cfg(not(unix))]
    let _ = checked;
    let mut data = Vec::new();
    file.take((max as u64).saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| BundleError::io(path, e))?;
    Ok(data)
}

#[cfg(test)]
mod tests;
