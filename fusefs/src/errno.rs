//! The one mapping from `store` errors to errno.

use fuser::Errno;
use store::{Error, ErrorKind};

/// The errno a file system call reports for `e` (logged when it is not the caller's doing).
pub(crate) fn of(e: &Error) -> Errno {
    match e.kind() {
        ErrorKind::NotFound => Errno::ENOENT,
        ErrorKind::AlreadyExists => Errno::EEXIST,
        ErrorKind::NotADirectory => Errno::ENOTDIR,
        ErrorKind::IsADirectory => Errno::EISDIR,
        ErrorKind::NotEmpty => Errno::ENOTEMPTY,
        // A parent that vanished under us (the kernel itself refuses moving a folder into itself).
        ErrorKind::Conflict => Errno::ENOENT,
        ErrorKind::PreconditionFailed => Errno::ESTALE,
        ErrorKind::Locked => Errno::EBUSY,
        ErrorKind::QuotaExceeded => Errno::EDQUOT,
        ErrorKind::InvalidPath => Errno::EINVAL,
        ErrorKind::InvalidInput => Errno::EINVAL,
        ErrorKind::ChecksumMismatch => Errno::EIO,
        ErrorKind::CursorExpired => Errno::EINVAL,
        ErrorKind::Unauthenticated => Errno::EACCES,
        ErrorKind::PermissionDenied => Errno::EPERM,
        ErrorKind::Busy => Errno::EBUSY,
        ErrorKind::Setup | ErrorKind::Io | ErrorKind::Database | ErrorKind::Internal => {
            tracing::error!(error = %e, "fuse: operation failed");
            Errno::EIO
        }
    }
}
