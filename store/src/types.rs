//! The domain types `store`'s API speaks: ids, sizes, nodes, versions, trash items, users.
//!
//! Plain data with public fields and no wire-format derives: each front end converts them into
//! its own representation (PROPFIND XML, JSON, FUSE attributes).

use std::fmt;

use crate::path::{UserName, VPath};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An account.
    UserId
);
id_type!(
    /// A file or directory; stable across renames, moves, trash and restarts.
    FileId
);
id_type!(
    /// One earlier content of a file.
    VersionId
);
id_type!(
    /// One item in a user's trash.
    TrashId
);

/// An entity tag: changes whenever the content (files) or anything below (directories) changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The blake3 hash of a file's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn from_db(bytes: &[u8]) -> crate::Result<ContentHash> {
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| crate::Error::internal("content hash of wrong length"))?;
        Ok(ContentHash(arr))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blake3:{}", self.to_hex())
    }
}

/// A point in time, as nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Whole seconds since the epoch.
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// From a `SystemTime` (saturating).
    pub fn from_system(t: std::time::SystemTime) -> Timestamp {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// As a `SystemTime`, for setting a file's modification time (before 1970: the epoch).
    pub fn to_system(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.0.max(0) as u64)
    }

    /// RFC 3339 in UTC with second precision, e.g. `2026-11-24T01:31:55Z`.
    pub fn to_rfc3339(self) -> String {
        let (y, mo, d, h, mi, s) = civil(self.secs());
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// Split seconds since the epoch into (year, month, day, hour, minute, second), UTC.
/// Howard Hinnant's days-from-civil inverse.
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, ((rem % 3600) / 60) as u32, (rem % 60) as u32)
}

/// A file or directory as `store` knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The stable id.
    pub id: FileId,
    /// Where it lives in the user's tree.
    pub path: VPath,
    /// Directory or file.
    pub is_dir: bool,
    /// Content length (0 for directories).
    pub size: u64,
    /// Last modification.
    pub mtime: Timestamp,
    /// blake3 of the content (files only).
    pub content_hash: Option<ContentHash>,
    /// Changes with every change of content, or of anything below a directory.
    pub etag: ETag,
    /// POSIX permission bits set through the FUSE mount (`None`: the default).
    pub mode: Option<u32>,
    /// Whose it is to the user who asked (see [`Store::view`](crate::Store::view)).
    pub access: Access,
}

/// Whether a node is the asking user's own or reached through a share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Access {
    /// In the user's own tree.
    #[default]
    Own,
    /// Below a share mounted in the user's tree.
    Shared {
        /// What the user may do there.
        role: Role,
        /// Whose files these are.
        owner: UserName,
        /// Whether this is the shared folder or file itself (where the share is mounted).
        mount_point: bool,
    },
}

/// An earlier content of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The version's id.
    pub id: VersionId,
    /// The file it belongs to.
    pub file_id: FileId,
    /// Content length.
    pub size: u64,
    /// The modification time the content had.
    pub mtime: Timestamp,
    /// blake3 of the content.
    pub content_hash: ContentHash,
    /// The ETag the content had while it was current.
    pub etag: ETag,
    /// When it stopped being current.
    pub created_at: Timestamp,
    /// Who wrote this content (an account name, `admin` for cairnctl), when recorded.
    pub author: Option<String>,
}

/// One item in the trash (a file, or a directory with everything that was in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashItem {
    /// The item's id.
    pub id: TrashId,
    /// The file id the item had (and gets back on restore).
    pub file_id: FileId,
    /// Where it was.
    pub orig_path: VPath,
    /// Directory or file.
    pub is_dir: bool,
    /// Bytes of file content inside.
    pub size: u64,
    /// When it was deleted.
    pub deleted_at: Timestamp,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account's id.
    pub id: UserId,
    /// The account's name, also its folder name in the backing directory.
    pub name: UserName,
    /// May manage other users.
    pub is_admin: bool,
    /// Refused at sign-in.
    pub disabled: bool,
    /// `None` means no limit.
    pub quota: Option<u64>,
    /// Bumped whenever cached credentials must be dropped.
    pub cred_epoch: i64,
}

/// A user's footprint against the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// `None` means no limit.
    pub quota: Option<u64>,
    /// Everything: files + versions + trash.
    pub used: u64,
    /// Live files only.
    pub files: u64,
    /// Versions only.
    pub versions: u64,
    /// Trash only.
    pub trash: u64,
    /// Bytes reserved by resumable uploads in progress (not in `used` until they complete).
    pub uploads: u64,
}

impl Usage {
    /// The largest new file that fits now (`None`: no limit). Versions and trash make room when
    /// needed, so they count as free; reservations of uploads in progress do not.
    pub fn available(&self) -> Option<u64> {
        self.quota.map(|q| room(q, self.used, self.versions + self.trash, self.uploads, 0))
    }
}

/// The one rule for free space: most bytes a write may bring under `quota`, given what is
/// `used`, what can be pruned to make room (versions, trash), what uploads in progress have
/// `reserved`, and the content the write `replaced` (which may be dropped as a last resort).
pub(crate) fn room(quota: u64, used: u64, prunable: u64, reserved: u64, replaced: u64) -> u64 {
    (quota + prunable + replaced).saturating_sub(used + reserved)
}

/// Which front end a change came through; recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// WebDAV.
    Dav,
    /// The REST API or the web UI.
    Rest,
    /// The FUSE mount.
    Fuse,
    /// The admin CLI.
    Ctl,
    /// The daemon itself (start-up, maintenance).
    Daemon,
}

impl Origin {
    /// The label stored in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Dav => "dav",
            Origin::Rest => "rest",
            Origin::Fuse => "fuse",
            Origin::Ctl => "ctl",
            Origin::Daemon => "daemon",
        }
    }

    /// The front end a stored label names.
    pub fn parse(label: &str) -> Option<Origin> {
        [Origin::Dav, Origin::Rest, Origin::Fuse, Origin::Ctl, Origin::Daemon]
            .into_iter()
            .find(|o| o.as_str() == label)
    }
}

/// Who is acting, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The front end.
    pub origin: Origin,
    /// A user name, `admin` for the CLI, or `system`.
    pub name: String,
    /// The client's address where there is one.
    pub remote: Option<String>,
}

impl Actor {
    /// The admin CLI.
    pub fn ctl() -> Actor {
        Actor { origin: Origin::Ctl, name: "admin".to_owned(), remote: None }
    }

    /// The daemon itself.
    pub fn system() -> Actor {
        Actor { origin: Origin::Daemon, name: "system".to_owned(), remote: None }
    }

    /// A signed-in user acting through `origin`.
    pub fn user(origin: Origin, user: &User, remote: Option<String>) -> Actor {
        Actor { origin, name: user.name.to_string(), remote }
    }
}

/// Parse a size as people type it: `1GiB`, `50 MiB`, `500 MB`, `1024`, `2.5G`. Binary units
/// (`KiB`, `MiB`, `GiB`, `TiB`, and the bare `K`, `M`, `G`, `T` that `du` and `df` print) are
/// powers of 1024; decimal units (`kB`, `MB`, `GB`, `TB`) are powers of 1000. Case does not
/// matter. This is the one size vocabulary of `cairnctl`, the REST API and the web UI.
pub fn parse_size(raw: &str) -> crate::Result<u64> {
    let s = raw.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad_size(raw)),
    };
    // Whole numbers are exact at any size; a fraction is rounded to the nearest byte.
    let bytes = match num.parse::<u64>() {
        Ok(n) => n.checked_mul(mult).filter(|&b| b <= i64::MAX as u64).ok_or_else(|| bad_size(raw))?,
        Err(_) => {
            let value: f64 = num.parse().map_err(|_| bad_size(raw))?;
            let bytes = (value * mult as f64).round();
            if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
                return Err(bad_size(raw));
            }
            bytes as u64
        }
    };
    Ok(bytes)
}

fn bad_size(raw: &str) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::InvalidInput,
        format!("invalid size {raw:?}: use a number with an optional unit such as 500 MiB or 2 GB"),
    )
}

/// Render a byte count for people, in binary units with at most one decimal: `12 B`,
/// `47.7 MiB`, `50 MiB`, `1.5 GiB`. The web UI's `size()` (web/format.js) renders the same text
/// for the same number, so a quota reads alike on the page and in `cairnctl`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    // One decimal, dropped when it is zero; 1023.96 KiB rounds up into the next unit.
    let mut tenths = (value * 10.0).round() as u64;
    if tenths >= 10240 && unit + 1 < UNITS.len() {
        tenths = 10;
        unit += 1;
    }
    if tenths % 10 == 0 {
        format!("{} {}", tenths / 10, UNITS[unit])
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

/// Conditions and details of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Only replace a file whose current etag is this (HTTP If-Match).
    pub if_match: Option<ETag>,
    /// Only create: fail if something exists (HTTP `If-None-Match: *`).
    pub create_only: bool,
    /// The body's announced length: a larger one than the quota allows is refused before a byte
    /// is read, and a body of another length is refused.
    pub expected_len: Option<u64>,
    /// The modification time to give the file (clients preserve their local mtime).
    pub mtime: Option<Timestamp>,
    /// Create missing parent folders instead of failing with Conflict.
    pub create_parents: bool,
    /// A digest the client claims for the body (Nextcloud's `OC-Checksum`): verified as the
    /// bytes arrive, and remembered for the content (see `checksums`).
    pub checksum: Option<crate::ContentChecksum>,
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The file as it is now.
    pub node: Node,
    /// True if the file did not exist before.
    pub created: bool,
    /// The version the previous content became, if any (and if it was kept).
    pub version: Option<VersionId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1 GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("2.5K").unwrap(), 2560);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(parse_size("50 MiB").unwrap(), 52_428_800);
        assert_eq!(parse_size("50 MB").unwrap(), 50_000_000);
        assert_eq!(parse_size("50mib").unwrap(), 52_428_800);
        assert_eq!(parse_size("50 mb").unwrap(), 50_000_000);
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("8191 PiB").ok(), None);
        assert_eq!(parse_size("8388608 TiB").ok(), None);
        for (bytes, text) in SIZE_VECTORS {
            assert_eq!(format_size(*bytes), *text, "{bytes}");
        }
    }

    /// The same table is checked against the web UI's `size()` (tests/web/unit.test.mjs).
    const SIZE_VECTORS: &[(u64, &str)] = &[
        (0, "0 B"),
        (12, "12 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (100_000, "97.7 KiB"),
        (1_048_550, "1 MiB"),
        (1_048_524, "1023.9 KiB"),
        (1_572_864, "1.5 MiB"),
        (12 << 20, "12 MiB"),
        (50_000_000, "47.7 MiB"),
        (52_428_800, "50 MiB"),
        (1536 << 20, "1.5 GiB"),
        (5 << 40, "5 TiB"),
    ];

    #[test]
    fn size_vectors_match_the_web_ui() {
        let js = include_str!("../../tests/web/unit.test.mjs");
        for (bytes, text) in SIZE_VECTORS {
            assert!(
                js.contains(&format!("[{bytes}, '{text}']")),
                "tests/web/unit.test.mjs lacks [{bytes}, '{text}']"
            );
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_795_484_915 * 1_000_000_000).to_rfc3339(), "2026-11-24T01:48:35Z");
        assert_eq!(Timestamp(951_782_400 * 1_000_000_000).to_rfc3339(), "2000-02-29T00:00:00Z");
    }
}

/// What a recipient may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// List, read, download, see versions.
    Viewer,
    /// Also write, create, rename and move inside, delete, restore versions.
    Editor,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
        }
    }

    /// `viewer` or `editor`.
    pub fn parse(raw: &str) -> crate::Result<Role> {
        match raw {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            _ => Err(crate::Error::new(
                crate::ErrorKind::InvalidInput,
                format!("role {raw:?}: use viewer or editor"),
            )),
        }
    }
}
