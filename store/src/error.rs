//! The one error type of `store`.
//!
//! Policy: every public function returns [`Error`]. Front ends act on [`Error::kind`] only: an
//! exhaustive `match` per protocol (WebDAV and REST statuses in `davbridge`, errno in `fusefs`);
//! `ctl` picks its exit code by kind (usage errors 2, others 1). Each table has a test over
//! [`ErrorKind::ALL`].
//! [`Error::message`] is safe to show a client: it never contains SQL, backing-directory paths or
//! another user's names. The full story (source error, internal paths) is in the `Display` of
//! the error's source chain, which goes to the log only.

use std::fmt;

/// Defines [`ErrorKind`] and [`ErrorKind::ALL`] from one list, so the list cannot miss a kind.
macro_rules! error_kinds {
    ($($(#[$doc:meta])* $kind:ident,)*) => {
        /// What went wrong, in terms a front end can act on.
        /// Deliberately not `#[non_exhaustive]`: each front end maps it in one exhaustive `match`,
        /// so a new kind cannot ship unmapped; each mapping's test runs over [`ErrorKind::ALL`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$doc])* $kind,)*
        }

        impl ErrorKind {
            /// Every kind, for tests of the front ends' mappings.
            pub const ALL: &[ErrorKind] = &[$(ErrorKind::$kind,)*];
        }
    };
}

error_kinds! {
    /// The path, file, version, trash item or user does not exist (or is not the caller's).
    NotFound,
    /// Something already exists where a new thing was to be created.
    AlreadyExists,
    /// A directory was expected.
    NotADirectory,
    /// A file was expected.
    IsADirectory,
    /// A folder that had to be empty (removed, or replaced by a move) has entries.
    NotEmpty,
    /// The operation conflicts with the tree: missing parent, moving a folder into itself.
    Conflict,
    /// A condition the caller set (If-Match, no-overwrite) does not hold.
    PreconditionFailed,
    /// The resource is locked by someone else.
    Locked,
    /// The user's quota cannot hold the result, even after pruning versions and trash.
    QuotaExceeded,
    /// A path or name failed validation.
    InvalidPath,
    /// Some other argument is malformed (bad size, short body, bad user name).
    InvalidInput,
    /// The data does not match the checksum the client sent with it.
    ChecksumMismatch,
    /// A change-feed cursor older than the journal keeps (or from another life of the
    /// account): the caller must list everything again.
    CursorExpired,
    /// Wrong credentials, or a disabled account.
    Unauthenticated,
    /// Authenticated, but not allowed.
    PermissionDenied,
    /// The data directory is in use by another process.
    Busy,
    /// A component Cairn needs is missing or misconfigured (PostgreSQL binaries, permissions).
    Setup,
    /// The backing directory failed.
    Io,
    /// PostgreSQL failed.
    Database,
    /// A bug or an impossible state.
    Internal,
}

impl ErrorKind {
    /// Whether the failure is the server's (its disk, its database, a bug, its setup), not
    /// something the caller did or can change: every front end reports these as its generic
    /// server failure (HTTP 5xx, `EIO`) and logs them.
    pub fn is_server_side(self) -> bool {
        match self {
            ErrorKind::Busy
            | ErrorKind::Setup
            | ErrorKind::Io
            | ErrorKind::Database
            | ErrorKind::Internal => true,
            ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::NotEmpty
            | ErrorKind::Conflict
            | ErrorKind::PreconditionFailed
            | ErrorKind::Locked
            | ErrorKind::QuotaExceeded
            | ErrorKind::InvalidPath
            | ErrorKind::InvalidInput
            | ErrorKind::ChecksumMismatch
            | ErrorKind::CursorExpired
            | ErrorKind::Unauthenticated
            | ErrorKind::PermissionDenied => false,
        }
    }
}

/// The error of every `store` operation.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a client-safe message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), source: None }
    }

    /// Attach the underlying cause (logged, never shown to clients).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The client-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn not_found(what: impl fmt::Display) -> Error {
        Error::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    /// Over quota: `needed` bytes do not fit in the `free` bytes left. The message names both,
    /// so every front end can tell the user by how much.
    pub(crate) fn quota(needed: u64, free: u64) -> Error {
        Error::new(
            ErrorKind::QuotaExceeded,
            format!(
                "quota exceeded: {} needed, {} free",
                crate::format_size(needed),
                crate::format_size(free)
            ),
        )
    }

    /// Over quota while receiving: more than the `free` bytes arrived.
    pub(crate) fn quota_outgrown(free: u64) -> Error {
        Error::new(
            ErrorKind::QuotaExceeded,
            format!("quota exceeded: more than the {} free", crate::format_size(free)),
        )
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        let kind = match source.raw_os_error() {
            // Quota enforced by the filesystem itself, or a full disk: the same answer for clients.
            Some(libc::EDQUOT) | Some(libc::ENOSPC) => ErrorKind::QuotaExceeded,
            _ => ErrorKind::Io,
        };
        let message = match kind {
            ErrorKind::QuotaExceeded => "no space left on the server".to_owned(),
            _ => "storage error".to_owned(),
        };
        let context = context.into();
        Error { kind, message, source: Some(Box::new(ContextError { context, source })) }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Error {
        let message = message.into();
        Error {
            kind: ErrorKind::Internal,
            message: "internal error".to_owned(),
            source: Some(message.into()),
        }
    }
}

/// An I/O error with what was being attempted (internal paths included: log-only).
#[derive(Debug)]
struct ContextError {
    context: String,
    source: std::io::Error,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for ContextError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Error {
        Error { kind: ErrorKind::Database, message: "database error".to_owned(), source: Some(Box::new(err)) }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(err: deadpool_postgres::PoolError) -> Error {
        Error {
            kind: ErrorKind::Database,
            message: "database unavailable".to_owned(),
            source: Some(Box::new(err)),
        }
    }
}

impl From<crate::path::InvalidPath> for Error {
    fn from(err: crate::path::InvalidPath) -> Error {
        Error::new(ErrorKind::InvalidPath, err.to_string())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut source = self.source.as_deref().map(|s| s as &dyn std::error::Error);
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
