//! The validated path inside one user's tree, and the validated user name.
//!
//! Every path from outside (a URL, a `Destination` header, a FUSE parent+name, a CLI argument)
//! becomes a [`VPath`] before anything else happens; its only constructors validate. The policy:
//! segments separated by `/`; no empty, `.` or `..` segment; no NUL, control character or
//! backslash; each name at most [`MAX_NAME_BYTES`] bytes and the whole path at most
//! [`MAX_PATH_BYTES`]; names are stored in Unicode NFC (what Nextcloud and macOS clients expect),
//! so `café` typed as NFD and as NFC is one file.

use std::fmt;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Longest file name, in bytes after normalization (the Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest path inside a user's tree, in bytes. Below Linux's `PATH_MAX` (4096) because a path
/// is a key of PostgreSQL's b-tree index on live paths, whose entries are capped at 2704 bytes.
pub const MAX_PATH_BYTES: usize = 2560;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidPath {
    /// A segment is empty (`a//b`, or a path of only slashes where a name was needed).
    EmptySegment,
    /// A `.` segment.
    CurrentSegment,
    /// A `..` segment.
    ParentSegment,
    /// A NUL byte.
    Nul,
    /// A control character (U+0000–U+001F, U+007F–U+009F).
    ControlCharacter,
    /// A backslash: a separator on Windows, so never part of a name.
    Backslash,
    /// A slash inside what must be one name (a FUSE name, a new name for a rename).
    Slash,
    /// One name longer than [`MAX_NAME_BYTES`].
    NameTooLong,
    /// The path longer than [`MAX_PATH_BYTES`].
    PathTooLong,
    /// The operation needs a name but got the root.
    Root,
}

impl fmt::Display for InvalidPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidPath::EmptySegment => "invalid path: empty segment",
            InvalidPath::CurrentSegment => "invalid path: '.' segment",
            InvalidPath::ParentSegment => "invalid path: parent segment",
            InvalidPath::Nul => "invalid path: NUL byte",
            InvalidPath::ControlCharacter => "invalid path: control character",
            InvalidPath::Backslash => "invalid path: backslash",
            InvalidPath::Slash => "invalid path: slash inside a name",
            InvalidPath::NameTooLong => "invalid path: name longer than 255 bytes",
            InvalidPath::PathTooLong => "invalid path: longer than 2560 bytes",
            InvalidPath::Root => "invalid path: the root has no name",
        })
    }
}

impl std::error::Error for InvalidPath {}

/// A validated, normalized path inside one user's tree. The root is the empty path.
///
/// Stored without a leading slash (`docs/report.pdf`); shown with one (`/docs/report.pdf`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VPath(String);

impl VPath {
    /// The root of the user's tree.
    pub fn root() -> VPath {
        VPath(String::new())
    }

    /// Parse a path such as `/docs/a.txt`, `docs/a.txt` or `/docs/` (one leading and one trailing
    /// slash are optional). `""` and `"/"` are the root.
    pub fn parse(raw: &str) -> Result<VPath, InvalidPath> {
        if raw.is_empty() || raw == "/" {
            return Ok(VPath::root());
        }
        let trimmed = raw.strip_prefix('/').unwrap_or(raw);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let mut out = String::with_capacity(trimmed.len());
        for segment in trimmed.split('/') {
            let name = normalize_name(segment)?;
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(&name);
        }
        if out.len() > MAX_PATH_BYTES {
            return Err(InvalidPath::PathTooLong);
        }
        Ok(VPath(out))
    }

    /// The child `name` of this path; `name` is validated as one segment.
    pub fn join(&self, name: &str) -> Result<VPath, InvalidPath> {
        let name = normalize_name(name)?;
        let joined = if self.0.is_empty() { name } else { format!("{}/{}", self.0, name) };
        if joined.len() > MAX_PATH_BYTES {
            return Err(InvalidPath::PathTooLong);
        }
        Ok(VPath(joined))
    }

    /// Whether this is the user's root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path without a leading slash (`""` for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (`""` for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent path, or `None` for the root.
    pub fn parent(&self) -> Option<VPath> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(idx) => VPath(self.0[..idx].to_owned()),
            None => VPath::root(),
        })
    }

    /// Every proper ancestor, nearest first, ending with the root.
    pub fn ancestors(&self) -> Vec<VPath> {
        let mut out = Vec::new();
        let mut cur = self.parent();
        while let Some(p) = cur {
            cur = p.parent();
            out.push(p);
        }
        out
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &VPath) -> bool {
        other.0.is_empty()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// Replace the prefix `from` (an ancestor or `self`) with `to`.
    pub fn rebase(&self, from: &VPath, to: &VPath) -> Option<VPath> {
        if !self.starts_with(from) {
            return None;
        }
        let rest = self.0[from.0.len()..].trim_start_matches('/');
        Some(match (to.0.is_empty(), rest.is_empty()) {
            (_, true) => to.clone(),
            (true, false) => VPath(rest.to_owned()),
            (false, false) => VPath(format!("{}/{}", to.0, rest)),
        })
    }

    /// Rebuild from a string read back from our own database, which only ever stores validated
    /// paths. Validates again anyway: a database edited by hand must not lead outside a tree.
    pub(crate) fn from_db(raw: String) -> crate::Result<VPath> {
        let parsed = VPath::parse(&raw)?;
        if parsed.0 != raw {
            return Err(crate::Error::internal(format!("non-canonical path in database: {raw:?}")));
        }
        Ok(parsed)
    }
}

fn normalize_name(segment: &str) -> Result<String, InvalidPath> {
    match segment {
        "" => return Err(InvalidPath::EmptySegment),
        "." => return Err(InvalidPath::CurrentSegment),
        ".." => return Err(InvalidPath::ParentSegment),
        _ => {}
    }
    for c in segment.chars() {
        match c {
            '\0' => return Err(InvalidPath::Nul),
            '\\' => return Err(InvalidPath::Backslash),
            '/' => return Err(InvalidPath::Slash),
            c if c.is_control() => return Err(InvalidPath::ControlCharacter),
            _ => {}
        }
    }
    let name = match is_nfc_quick(segment.chars()) {
        IsNormalized::Yes => segment.to_owned(),
        _ => segment.nfc().collect(),
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(InvalidPath::NameTooLong);
    }
    Ok(name)
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl fmt::Debug for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VPath({:?})", self.to_string())
    }
}

/// A validated account name: 1–64 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
/// It names the user's folder in the backing directory, so it is kept deliberately plain.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    /// Validate a user name.
    pub fn parse(raw: &str) -> crate::Result<UserName> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && raw.as_bytes()[0].is_ascii_alphanumeric();
        if !ok {
            return Err(crate::Error::new(
                crate::ErrorKind::InvalidInput,
                "invalid user name: use 1-64 of a-z 0-9 . _ -, starting with a letter or digit",
            ));
        }
        Ok(UserName(raw.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserName({})", self.0)
    }
}

#[cfg(test)]
mod tests;
