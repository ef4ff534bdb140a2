//! Size and count limits applied while reading a bundle.

/// Largest trust root JSON: a key entry is about 400 bytes, so 256 KiB is
/// far above [`crate::MAX_ROOT_KEYS`] entries.
pub const MAX_ROOT_BYTES: usize = 256 * 1024;

/// Default [`Limits::max_bundle_bytes`]: a policy with its tests is a few
/// MiB; 64 MiB bounds memory per download with room to spare.
pub const DEFAULT_MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;

/// Default [`Limits::max_entries`]: a policy, its test files and signatures
/// are tens of entries; 1000 bounds per-entry work.
pub const DEFAULT_MAX_ENTRIES: usize = 1000;

/// Default [`Limits::max_file_bytes`]: half the bundle, so one file cannot
/// be the whole budget by itself with overhead hidden elsewhere.
pub const DEFAULT_MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

/// Limits applied to a bundle before and while it is read. Counted entries
/// are every archive entry (files, directories, signatures, root files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest archive, or sum of file sizes of a directory bundle.
    pub max_bundle_bytes: usize,
    /// Most entries.
    pub max_entries: usize,
    /// Largest single file.
    pub max_file_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bundle_bytes: DEFAULT_MAX_BUNDLE_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}
