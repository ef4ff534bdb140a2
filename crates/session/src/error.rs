//! Store errors. Every one of them makes a request that needs a session
//! fail closed (503).

/// Why a store operation failed. Messages never contain session ids,
/// tokens or passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached (connection refused or lost, file not
    /// openable).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within the configured timeout.
    #[error("session store timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The store refuses writes (a read-only replica, a read-only file).
    #[error("session store is read-only: {0}")]
    ReadOnly(String),
    /// The store is out of memory or disk (Redis `maxmemory` with
    /// `noeviction`, a full disk).
    #[error("session store is out of memory or space: {0}")]
    OutOfMemory(String),
    /// The store refused the gateway's credentials or commands (an ACL
    /// change, wrong password, file permissions).
    #[error("session store denied access: {0}")]
    PermissionDenied(String),
    /// A record could not be decoded.
    #[error("session record is corrupt: {0}")]
    Corrupt(String),
    /// The caller asked for something the store refuses: creating a key
    /// that exists, a version that does not follow, revoking with an empty
    /// filter. A bug in the caller, not a store failure.
    #[error("session store refused the request: {0}")]
    Invalid(&'static str),
}

impl StoreError {
    /// A stable reason code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Timeout(_) => "timeout",
            StoreError::ReadOnly(_) => "read_only",
            StoreError::OutOfMemory(_) => "out_of_memory",
            StoreError::PermissionDenied(_) => "permission_denied",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Invalid(_) => "invalid",
        }
    }
}
