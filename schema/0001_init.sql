-- Cairn's metadata. The user's content lives as plain files in the backing directory; these tables
-- describe it. Forward-only: a change is a new numbered file, never an edit of this one.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    -- argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT false,
    disabled      BOOLEAN NOT NULL DEFAULT false,
    -- NULL means no limit.
    quota_bytes   BIGINT CHECK (quota_bytes IS NULL OR quota_bytes >= 0),
    -- The whole footprint: live files + versions + trash. Kept in step by every mutation.
    used_bytes    BIGINT NOT NULL DEFAULT 0,
    -- Per-user change-journal cursor: the seq of the newest journal row. Updating it takes the
    -- user's row lock, which orders every mutating transaction of one user by commit.
    journal_seq   BIGINT NOT NULL DEFAULT 0,
    -- Bumped on password change, disable and delete so front ends drop cached credentials.
    cred_epoch    BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- App passwords and device tokens. Tokens are 256-bit random strings, so a fast keyed hash is
-- enough; the account password alone gets argon2id.
CREATE TABLE app_passwords (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label        TEXT NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ
);
CREATE INDEX app_passwords_user ON app_passwords (user_id);

CREATE TABLE trash (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Where the item lived; restore puts it back there unless told otherwise.
    node_id     BIGINT NOT NULL, -- the file id the item had and gets back
    orig_path   TEXT COLLATE "C" NOT NULL,
    is_dir      BOOLEAN NOT NULL,
    -- Bytes of file content inside the item (counted in users.used_bytes).
    size        BIGINT NOT NULL,
    deleted_at  BIGINT NOT NULL -- unix nanoseconds
);
CREATE INDEX trash_user ON trash (user_id, deleted_at);

-- One row per file or directory, live or in the trash. `id` is the stable file id: it survives
-- renames, moves and restarts. `path` is the full path inside the user's tree ('' for the root,
-- no leading slash, NFC), kept in step with parent_id/name so lookups are one index probe.
CREATE TABLE nodes (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL for the root. A trashed node may outlive its old parent (restore sets a new one).
    parent_id    BIGINT REFERENCES nodes (id) ON DELETE SET NULL,
    name         TEXT COLLATE "C" NOT NULL,
    path         TEXT COLLATE "C" NOT NULL,
    is_dir       BOOLEAN NOT NULL,
    size         BIGINT NOT NULL DEFAULT 0,
    mtime_ns     BIGINT NOT NULL,
    -- blake3 of the content (files only).
    content_hash BYTEA,
    etag         TEXT NOT NULL,
    -- Set while the node sits in the trash (the item itself or something under it).
    trash_id     BIGINT REFERENCES trash (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX nodes_live_path ON nodes (user_id, path) WHERE trash_id IS NULL;
CREATE INDEX nodes_parent ON nodes (parent_id);
CREATE INDEX nodes_trash ON nodes (trash_id) WHERE trash_id IS NOT NULL;

-- Earlier contents of a file. The blob is a plain file at .cairn/versions/USER/<id>.
CREATE TABLE versions (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    node_id      BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    size         BIGINT NOT NULL,
    mtime_ns     BIGINT NOT NULL,
    content_hash BYTEA NOT NULL,
    etag         TEXT NOT NULL,
    -- When this content stopped being current (unix nanoseconds); retention works on it.
    created_at   BIGINT NOT NULL
);
CREATE INDEX versions_node ON versions (node_id, created_at);
CREATE INDEX versions_user ON versions (user_id, created_at);

-- WebDAV dead properties (and, later, FUSE xattrs), per node.
CREATE TABLE properties (
    node_id   BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (node_id, namespace, name)
);

-- WebDAV locks. They live here so they survive restarts.
CREATE TABLE locks (
    token      TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path       TEXT COLLATE "C" NOT NULL,
    depth_inf  BOOLEAN NOT NULL,
    exclusive  BOOLEAN NOT NULL,
    owner_xml  TEXT,
    expires_at BIGINT NOT NULL -- unix nanoseconds
);
CREATE INDEX locks_user_path ON locks (user_id, path);

-- The per-user change journal. (user_id, seq) is the cursor; seq comes from users.journal_seq.
CREATE TABLE journal (
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    at           BIGINT NOT NULL, -- unix nanoseconds
    kind         TEXT NOT NULL,   -- create | modify | move | delete | restore
    node_id      BIGINT NOT NULL,
    is_dir       BOOLEAN NOT NULL,
    path         TEXT NOT NULL,
    old_path     TEXT,
    size         BIGINT,
    etag         TEXT,
    content_hash BYTEA,
    PRIMARY KEY (user_id, seq)
);

CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL, -- unix nanoseconds
    user_id BIGINT,          -- the account acted upon or acting; NULL for unknown names
    actor   TEXT NOT NULL,   -- who: user name, 'admin' (cairnctl), 'system'
    origin  TEXT NOT NULL,   -- dav | fuse | rest | ctl | daemon
    action  TEXT NOT NULL,
    path    TEXT,
    detail  TEXT
);
CREATE INDEX audit_log_user ON audit_log (user_id, at);

-- Disk work promised by a committed transaction and not yet confirmed done. Written in the same
-- transaction as the metadata it belongs to; replayed (idempotently) at start-up.
CREATE TABLE intents (
    id      BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    ops     TEXT NOT NULL -- JSON list of disk operations, see store::intent
);
