//! WebDAV's mapping from `store`'s error kinds to HTTP, and the error bodies clients parse (the
//! REST API has its own, with stable codes: `api::code_of`).
//! WebDAV routes answer with the Sabre-style XML body Nextcloud clients read
//! (`<d:error>` with `<s:exception>` and `<s:message>`); the message is `store`'s client-safe
//! one, never a path of the backing directory or SQL (those go to the log).

use hyper::StatusCode;
use store::ErrorKind;

/// An HTTP-level failure: a status and a client-safe message.
#[derive(Debug)]
pub struct HttpError {
    /// The status to answer with.
    pub status: StatusCode,
    /// Shown to the client.
    pub message: String,
    /// A WebDAV precondition element to put in the body (`DAV:propfind-finite-depth`).
    pub precondition: Option<&'static str>,
}

impl HttpError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError { status, message: message.into(), precondition: None }
    }

    /// An error naming a WebDAV precondition.
    pub fn precondition(status: StatusCode, element: &'static str, message: impl Into<String>) -> HttpError {
        HttpError { status, message: message.into(), precondition: Some(element) }
    }
}

/// The status for each kind of `store` failure. Exhaustive on purpose.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists => StatusCode::PRECONDITION_FAILED,
        ErrorKind::NotADirectory => StatusCode::CONFLICT,
        ErrorKind::IsADirectory => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::NotEmpty => StatusCode::CONFLICT,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::Locked => StatusCode::LOCKED,
        ErrorKind::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::InvalidPath => StatusCode::BAD_REQUEST,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::ChecksumMismatch => StatusCode::BAD_REQUEST,
        ErrorKind::CursorExpired => StatusCode::GONE,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Setup => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Io => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Database => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<store::Error> for HttpError {
    fn from(e: store::Error) -> HttpError {
        let status = status_of(e.kind());
        if status.is_server_error() {
            // The full chain (paths, SQL) is for the log only.
            tracing::error!(error = %e, "request failed");
        }
        HttpError::new(status, e.message())
    }
}

/// The exception class Nextcloud clients expect for a status (sabre/dav's names).
pub fn sabre_exception(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Sabre\\DAV\\Exception\\BadRequest",
        401 => "Sabre\\DAV\\Exception\\NotAuthenticated",
        403 => "Sabre\\DAV\\Exception\\Forbidden",
        404 => "Sabre\\DAV\\Exception\\NotFound",
        405 => "Sabre\\DAV\\Exception\\MethodNotAllowed",
        409 => "Sabre\\DAV\\Exception\\Conflict",
        412 => "Sabre\\DAV\\Exception\\PreconditionFailed",
        415 => "Sabre\\DAV\\Exception\\UnsupportedMediaType",
        416 => "Sabre\\DAV\\Exception\\RequestedRangeNotSatisfiable",
        423 => "Sabre\\DAV\\Exception\\Locked",
        507 => "Sabre\\DAV\\Exception\\InsufficientStorage",
        501 => "Sabre\\DAV\\Exception\\NotImplemented",
        _ => "Sabre\\DAV\\Exception",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        assert_eq!(status_of(ErrorKind::QuotaExceeded), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(status_of(ErrorKind::Locked), StatusCode::LOCKED);
        assert_eq!(status_of(ErrorKind::InvalidPath), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(ErrorKind::PreconditionFailed), StatusCode::PRECONDITION_FAILED);
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
    }

    /// Every kind: the caller's failures are 4xx (they can act on them), the server's are 5xx
    /// (a client retries or reports them), and no failure reads as success. One exception, by
    /// the protocol: a full quota is 507 Insufficient Storage (RFC 4918 §11.5), which WebDAV
    /// clients (Nextcloud's among them) recognize.
    #[test]
    fn every_kind_has_a_status_of_its_class() {
        for &kind in ErrorKind::ALL {
            let status = status_of(kind);
            if kind == ErrorKind::QuotaExceeded {
                assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
            } else if kind.is_server_side() {
                assert!(status.is_server_error(), "{kind:?} → {status}");
            } else {
                assert!(status.is_client_error(), "{kind:?} → {status}");
            }
        }
    }
}
