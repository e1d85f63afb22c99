-- Browser sessions (the REST API's cookie). Only a hash of the cookie value is stored; the CSRF
-- token is a second random value the page sends back in a header on every state change.
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL, -- unix nanoseconds
    expires_at BIGINT NOT NULL  -- unix nanoseconds
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Resumable uploads (tus 1.0). The bytes received so far are a plain file at
-- .cairn/uploads/<id>; `upload_offset` only ever names bytes already fsynced there. The reserved
-- `length` counts against the user's quota until the upload completes, is terminated or expires.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY, -- 128-bit random, hex
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path          TEXT NOT NULL,    -- destination in the user's tree
    length        BIGINT NOT NULL CHECK (length >= 0),
    upload_offset BIGINT NOT NULL DEFAULT 0 CHECK (upload_offset >= 0 AND upload_offset <= length),
    metadata      TEXT NOT NULL,    -- the Upload-Metadata header as sent
    mtime_ns      BIGINT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX uploads_user ON uploads (user_id);

-- Who wrote each content (the actor's name), shown in version history. NULL: not recorded
-- (content from before this column, or found by a scan).
ALTER TABLE nodes ADD COLUMN modified_by TEXT;
ALTER TABLE versions ADD COLUMN modified_by TEXT;
