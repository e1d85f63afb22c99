//! Where the parts of the data directory live.

use super::*;

pub(crate) const FILES: &str = "files";
pub(crate) const STAGING: &str = ".cairn/staging";
pub(crate) const VERSIONS: &str = ".cairn/versions";
pub(crate) const TRASH: &str = ".cairn/trash";
pub(crate) const UPLOADS: &str = ".cairn/uploads";
pub(crate) const CHUNKS: &str = ".cairn/chunks";
pub(crate) const SIGNATURES: &str = ".cairn/signatures";

/// `files/USER/<path>` (`files/USER` for the root).
pub(crate) fn user_path(user: &UserName, path: &VPath) -> String {
    if path.is_root() { format!("{FILES}/{user}") } else { format!("{FILES}/{user}/{}", path.as_str()) }
}

pub(crate) fn user_root(user: &UserName) -> String {
    format!("{FILES}/{user}")
}

pub(crate) fn versions_dir(user: &UserName) -> String {
    format!("{VERSIONS}/{user}")
}

pub(crate) fn version_blob(user: &UserName, id: VersionId) -> String {
    format!("{VERSIONS}/{user}/{id}")
}

pub(crate) fn trash_dir(user: &UserName) -> String {
    format!("{TRASH}/{user}")
}

/// The bytes of a resumable upload received so far.
pub(crate) fn upload(id: &str) -> String {
    format!("{UPLOADS}/{id}")
}

/// The folder of a chunked upload's chunks.
pub(crate) fn chunks(id: &str) -> String {
    format!("{CHUNKS}/{id}")
}

/// The cached rsync signature of a content.
pub(crate) fn signature(hash: &crate::types::ContentHash) -> String {
    format!("{SIGNATURES}/{}", hash.to_hex())
}

pub(crate) fn staging(name: &str) -> String {
    format!("{STAGING}/{name}")
}
