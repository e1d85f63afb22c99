-- What the Nextcloud/ownCloud clients need beyond WebDAV (see davbridge/src/nextcloud).

-- This server's identity: the suffix of every `oc:id` (the clients key their journals by it,
-- so it never changes once made).
CREATE TABLE instance (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    id  TEXT NOT NULL
);
INSERT INTO instance (id) VALUES ('oc' || substr(md5(random()::text || clock_timestamp()::text), 1, 10));

-- Digests of a content other than blake3 (`SHA1:<hex> MD5:<hex>`), by its blake3: learnt when
-- a client uploads a content with a checksum that the server verified. A property of the bytes
-- alone, so it can never go stale, and it holds for every file, version or copy with them.
CREATE TABLE content_checksums (
    content_hash BYTEA PRIMARY KEY,
    checksums    TEXT NOT NULL
);

-- Chunked uploads (Nextcloud "NG" and v2): a folder of chunks at .cairn/chunks/<id>, assembled
-- into one ordinary write. `received` counts the chunks' bytes; the quota holds the larger of
-- it and the announced total until the upload is assembled, deleted or expires.
CREATE TABLE chunked_uploads (
    id           TEXT PRIMARY KEY,  -- 128-bit random, hex: the folder's name on disk
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,     -- the client's transfer id
    total_length BIGINT CHECK (total_length >= 0),
    destination  TEXT,              -- the path in the user's tree, when the client said it
    received     BIGINT NOT NULL DEFAULT 0 CHECK (received >= 0),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    UNIQUE (user_id, name)
);
