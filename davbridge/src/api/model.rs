//! The REST API's request and response bodies. The OpenAPI document is generated from these
//! very types (utoipa), so the spec and the handlers cannot drift apart.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Every error: a stable machine-readable code and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    pub error: ErrorBody,
}

/// The error's details.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code: `not_found`, `already_exists`, `not_a_folder`, `is_a_folder`, `not_empty`, `conflict`,
    /// `precondition_failed`, `locked`, `quota_exceeded`, `invalid_path`, `invalid_input`,
    /// `checksum_mismatch`, `unauthenticated`, `forbidden`, `csrf`, `throttled`, `busy`,
    /// `method_not_allowed`, `unsupported_media_type`, `too_large`, `internal`.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
}

/// A file or folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entry {
    /// Stable file id (survives renames and moves).
    pub id: i64,
    /// Full path in the user's tree, with a leading slash (`/` for the root).
    pub path: String,
    /// Last segment (`""` for the root).
    pub name: String,
    pub is_dir: bool,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Modification time, RFC 3339 (UTC).
    #[schema(format = DateTime)]
    pub mtime: String,
    /// Changes whenever the content (or, for a folder, anything below it) changes.
    pub etag: String,
    /// blake3 of the content, hex (files only).
    pub hash: Option<String>,
    /// Media type guessed from the name (files only).
    pub content_type: Option<String>,
    /// Set when this is someone else's, shared with you.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedInfo>,
}

/// How a file or folder shared with you is yours to use.
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedInfo {
    /// Whose it is.
    pub owner: String,
    /// `viewer` (read) or `editor` (also change).
    pub role: String,
    /// Whether this is the shared folder or file itself, where the share is mounted in your
    /// tree (you may rename, move or hide it: only your view changes).
    pub mount_point: bool,
}

/// A share you made.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareEntry {
    pub id: i64,
    /// The shared folder or file's id.
    pub file_id: i64,
    /// Where it is in your tree now; `null` while it is in your trash (the share is suspended).
    pub path: Option<String>,
    pub is_dir: bool,
    /// The account it is shared with, or
    pub user: Option<String>,
    /// the group.
    pub group: Option<String>,
    /// `viewer` or `editor`.
    pub role: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Share a folder or file of yours; shared with them already: the role changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    /// The folder or file, in your tree.
    pub path: String,
    /// An account, or
    pub user: Option<String>,
    /// a group (exactly one of the two).
    pub group: Option<String>,
    /// `viewer` (read) or `editor` (also write, rename, delete, restore versions).
    pub role: String,
}

/// A public link, as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkEntry {
    pub id: i64,
    /// The linked folder or file's id.
    pub file_id: i64,
    /// Where it is in your tree; `null` while in your trash (the link answers 404 then).
    pub path: Option<String>,
    pub is_dir: bool,
    pub has_password: bool,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Downloads left; `null`: no limit.
    pub downloads_left: Option<u32>,
    /// Visitors can only send files into the folder.
    pub upload_only: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A public link to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLinkRequest {
    /// Your folder or file.
    pub path: String,
    /// Asked before anything is shown (at least 8 characters).
    pub password: Option<String>,
    /// When it stops working, unix seconds.
    pub expires_at: Option<i64>,
    /// How many file downloads it allows (a zip of a folder is one).
    pub max_downloads: Option<u32>,
    /// A drop link to a folder: visitors can only send files into it, and see nothing in it.
    #[serde(default)]
    pub upload_only: bool,
}

/// A link just made, with its token (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewLinkAnswer {
    pub link: LinkEntry,
    /// 128 random bits, hex: whoever has it reaches the link.
    pub token: String,
    /// Where the link's content is listed (`/api/v1/public/TOKEN`).
    pub url: String,
    /// The link's page in the browser (`/s/TOKEN`), the address to send.
    pub page: String,
}

/// What a public link shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicListing {
    /// The linked folder or file's name.
    pub name: String,
    /// The folder (or file) asked for, its path below the link (`/` is the link itself).
    pub folder: Entry,
    /// Empty for an upload-only link.
    pub entries: Vec<Entry>,
    /// Visitors can only send files (`POST /api/v1/public/TOKEN/upload`).
    pub upload_only: bool,
}

/// A file sent through an upload-only link.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicUpload {
    /// The name it was saved under (another than the one sent if that was taken).
    pub name: String,
    pub size: u64,
}

/// Something shared with you.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncomingShare {
    /// Whose it is.
    pub owner: String,
    /// Its name in the owner's tree.
    pub name: String,
    pub is_dir: bool,
    /// The higher of your direct and your groups' roles.
    pub role: String,
    /// The groups it reaches you through (empty: shared with you directly).
    pub via_groups: Vec<String>,
    /// Where it is in your tree; `null` if you hid it.
    pub path: Option<String>,
}

/// One page of a folder's entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct Listing {
    pub folder: Entry,
    pub entries: Vec<Entry>,
    /// Entries in the folder in all.
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

/// Sort keys of a listing.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    #[default]
    Name,
    Size,
    Mtime,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

/// A path in the user's tree.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// Path in the user's tree, e.g. `/docs/report.pdf`.
    pub path: String,
}

/// Which page of which folder, in what order.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The folder (default: the root).
    #[serde(default)]
    pub path: Option<String>,
    /// Folders always come first; within them, this key.
    #[serde(default)]
    #[param(inline)]
    pub sort: Option<SortKey>,
    #[serde(default)]
    #[param(inline)]
    pub order: Option<SortOrder>,
    /// Entries to skip.
    #[serde(default)]
    #[param(minimum = 0, maximum = 1000000000)]
    pub offset: Option<u64>,
    /// Entries to return (1 to 5000, default 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<u64>,
}

/// How to download.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// Path of the file.
    pub path: String,
    /// Ask the browser to save the file (`Content-Disposition: attachment`) instead of showing it.
    #[serde(default)]
    pub download: Option<bool>,
}

/// Where to upload.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Destination path; missing parent folders are created.
    pub path: String,
    /// Replace an existing file (its old content becomes a version). Default true.
    #[serde(default)]
    pub overwrite: Option<bool>,
}

/// A search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Text the name contains (case-insensitive).
    #[param(min_length = 1, max_length = 255)]
    pub q: String,
    /// Most results (1 to 1000, default 200).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// A new folder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFolder {
    /// Its path; missing parents are created.
    pub path: String,
}

/// A move, rename or copy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub from: String,
    pub to: String,
    /// Replace what is at `to` (it goes to the trash, or for a copy onto a file, becomes a version).
    #[serde(default)]
    pub overwrite: bool,
}

/// Where a deleted item went.
#[derive(Debug, Serialize, ToSchema)]
pub struct Trashed {
    /// The trash item to restore it from; `null` when what was deleted is a share mounted in
    /// your tree: it is hidden from your tree, the owner's files are untouched.
    pub trash_id: Option<i64>,
}

/// An item in the trash.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrashEntry {
    pub id: i64,
    /// The file id it had and gets back.
    pub file_id: i64,
    /// Where it was.
    pub path: String,
    pub name: String,
    pub is_dir: bool,
    /// Bytes of content inside.
    pub size: u64,
    #[schema(format = DateTime)]
    pub deleted_at: String,
}

/// Where to restore a trash item.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreTo {
    /// A new path (default: where it was).
    #[serde(default)]
    pub to: Option<String>,
}

/// Bytes freed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Purged {
    pub bytes: u64,
}

/// An earlier content of a file.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionEntry {
    pub id: i64,
    pub file_id: i64,
    pub size: u64,
    /// The modification time the content had.
    #[schema(format = DateTime)]
    pub mtime: String,
    /// When it stopped being current.
    #[schema(format = DateTime)]
    pub replaced_at: String,
    pub etag: String,
    /// blake3, hex.
    pub hash: String,
    /// Who wrote this content, when known.
    pub author: Option<String>,
}

/// Storage use.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageInfo {
    /// Bytes allowed (`null`: no limit).
    pub quota: Option<u64>,
    /// Bytes used in all (files + versions + trash).
    pub used: u64,
    pub files: u64,
    pub versions: u64,
    pub trash: u64,
    /// Bytes reserved by resumable uploads in progress.
    pub uploads: u64,
    /// The largest new file that fits now (`null`: no limit); versions and trash make room.
    pub available: Option<u64>,
}

/// The signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    pub is_admin: bool,
    pub usage: UsageInfo,
    /// For cookie sessions: the token to send in `X-CSRF-Token` with every state change.
    pub csrf: Option<String>,
}

/// Sign in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub user: String,
    pub password: String,
}

/// An app password / personal access token (without its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub label: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

/// A pending sign-in of a Nextcloud or ownCloud app (Login Flow v2).
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginFlowInfo {
    /// The app, as it named itself: "Nextcloud Android 3.29.0", "Nextcloud desktop 3.7.3 (...)".
    pub device: String,
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// What it is for (a device, a script).
    #[schema(min_length = 1, max_length = 200)]
    pub label: String,
}

/// A new token; `token` is shown this once. Use it as `Authorization: Bearer <token>`, or as
/// the password with Basic (WebDAV).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewToken {
    pub id: i64,
    pub label: String,
    pub token: String,
}

/// An account, as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    pub name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub quota: Option<u64>,
    pub used: u64,
}

/// A group of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminGroup {
    pub name: String,
    /// Account names, sorted.
    pub members: Vec<String>,
}

/// A group to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroupRequest {
    /// 1-64 of a-z 0-9 . _ -, starting with a letter or digit.
    pub name: String,
}

/// An account to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    pub name: String,
    /// At least 8 characters.
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
    /// Bytes, or a size with a unit (omit for no limit).
    #[serde(default)]
    pub quota: Option<Size>,
}

/// A size: a number of bytes, or text with a unit as people type it: `"50 MiB"` (binary:
/// KiB, MiB, GiB, TiB, and the bare K, M, G, T) or `"50 MB"` (decimal: kB, MB, GB, TB).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    /// The number of bytes, or a clear error.
    pub fn bytes(&self) -> store::Result<u64> {
        match self {
            Size::Bytes(n) if *n > i64::MAX as u64 => store::parse_size(&n.to_string()),
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => store::parse_size(t),
        }
    }
}

/// Changes to an account (omitted fields stay).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New quota: bytes, or a size with a unit.
    #[serde(default)]
    pub quota: Option<Size>,
    /// Remove the quota.
    #[serde(default)]
    pub unlimited: bool,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password (signs the user out everywhere).
    #[serde(default)]
    pub password: Option<String>,
}

/// One change to the user's tree, as the change feed reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeRecord {
    /// The feed position just after this change (ask with it to get what follows).
    pub cursor: String,
    /// `create`, `modify`, `move`, `delete` or `restore` (back from the trash).
    pub kind: String,
    /// Stable file id.
    pub id: i64,
    pub is_dir: bool,
    /// Where it is now (for `delete`: where it was), with a leading slash.
    pub path: String,
    /// For `move`: where it was.
    pub old_path: Option<String>,
    /// New size (files).
    pub size: Option<u64>,
    /// New etag.
    pub etag: Option<String>,
    /// blake3 of the new content, hex (files).
    pub hash: Option<String>,
    /// When it was committed, RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
    /// The front end that made it: `dav`, `rest`, `fuse`, `ctl`, `daemon`.
    pub origin: Option<String>,
}

/// A page of the change feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesPage {
    /// Oldest first.
    pub changes: Vec<ChangeRecord>,
    /// Ask with this next.
    pub cursor: String,
    /// More changes are waiting: ask again at once.
    pub more: bool,
    /// Pushed (`/api/v1/events`) when something changed in a share mounted in your tree.
    /// Shares' changes are not in this feed: list the tree again (`/api/v1/tree`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// Where to read the change feed from.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// A cursor from an earlier answer, or `now` for the current position (no changes).
    pub cursor: String,
    /// Long poll: when nothing is new, wait up to this many seconds for a change.
    #[param(maximum = 60)]
    #[serde(default)]
    pub wait: Option<u64>,
    /// Most changes in the answer (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Which folder to list recursively.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeQuery {
    /// The folder (default: the root).
    #[serde(default)]
    pub path: Option<String>,
}

/// Where to start the pushed feed.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// A cursor from an earlier answer, or `now` (the default).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Headers of a delta upload.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct DeltaHeaders {
    /// The etag of the content the delta was computed against (from `GET /api/v1/signature`),
    /// as an HTTP entity tag.
    #[param(rename = "If-Match", pattern = r#"^(W/)?"[!#-~]*"$"#)]
    pub if_match: String,
    /// blake3 of the content the delta produces, 64 hex digits.
    #[param(rename = "X-Cairn-Blake3", pattern = "^[0-9a-fA-F]{64}$")]
    pub blake3: String,
}

/// Everything below a folder, and the feed position it was read at.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tree {
    /// Changes after this cursor are not (all) in `entries`: follow the feed from here.
    pub cursor: String,
    /// The folder itself first, then everything below it.
    pub entries: Vec<Entry>,
}

/// The API's view of a node.
pub(crate) fn entry(n: &store::Node) -> Entry {
    Entry {
        id: n.id.0,
        path: format!("/{}", n.path.as_str()),
        name: n.path.name().to_owned(),
        is_dir: n.is_dir,
        size: n.size,
        mtime: n.mtime.to_rfc3339(),
        etag: n.etag.0.clone(),
        hash: n.content_hash.map(|h| h.to_hex()),
        content_type: (!n.is_dir).then(|| crate::download::content_type(n.path.name()).to_owned()),
        shared: match &n.access {
            store::Access::Own => None,
            store::Access::Shared { role, owner, mount_point } => Some(SharedInfo {
                owner: owner.as_str().to_owned(),
                role: role.as_str().to_owned(),
                mount_point: *mount_point,
            }),
        },
    }
}

/// An encrypted vault of yours: a folder whose files are your devices' ciphertext.
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultEntry {
    /// Its folder, in your tree.
    pub path: String,
    /// The vault's id (32 hex digits), as its encrypted files carry it.
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Make an empty folder of yours a vault.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVault {
    /// The folder (it must exist and be empty).
    pub path: String,
    /// The vault's id, 32 hex digits, chosen at random by the client that made its keys.
    pub id: String,
}

/// Your vault keys as the server keeps them: wrapped on your device, never usable here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultAccountBody {
    /// The seed wrapped under your passphrase and emergency kit (base64).
    pub passphrase_blob: String,
    /// The seed wrapped under your recovery key (base64).
    pub recovery_blob: String,
    /// Your X25519 public key (64 hex digits): vault keys are wrapped to it.
    pub x25519: String,
    /// Your Ed25519 public key (64 hex digits): your manifests and configs are signed with it.
    pub ed25519: String,
}

/// Another account's public vault keys, to share a vault with them (compare safety numbers
/// in person before trusting them).
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultKeys {
    pub user: String,
    /// X25519 public key, 64 hex digits.
    pub x25519: String,
    /// Ed25519 public key, 64 hex digits.
    pub ed25519: String,
}
