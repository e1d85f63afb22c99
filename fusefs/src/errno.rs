//! The one mapping from `store` errors to errno (the mount's error table).

use fuser::Errno;
use store::{Error, ErrorKind};

/// The errno a file system call reports for `e` (logged when it is not the caller's doing).
pub(crate) fn of(e: &Error) -> Errno {
    if e.kind().is_server_side() {
        tracing::error!(error = %e, "fuse: operation failed");
    }
    errno(e.kind())
}

fn errno(kind: ErrorKind) -> Errno {
    match kind {
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
        ErrorKind::Setup | ErrorKind::Io | ErrorKind::Database | ErrorKind::Internal => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind: the server's failures read as `EIO` (or `EBUSY`), and none of the caller's
    /// does, save content that does not match its checksum.
    #[test]
    fn every_kind_has_an_errno_of_its_class() {
        for &kind in ErrorKind::ALL {
            let e = errno(kind);
            if kind.is_server_side() {
                assert!(e == Errno::EIO || e == Errno::EBUSY, "{kind:?} → {e:?}");
            } else if kind != ErrorKind::ChecksumMismatch {
                assert!(e != Errno::EIO, "{kind:?} → EIO, as if the disk had failed");
            }
        }
    }
}
