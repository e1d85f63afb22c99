-- Public links: a folder or file reachable by anyone holding the link's token (see
-- docs/design/sharing.md). Only the token's hash is kept; revoking deletes the row.
CREATE TABLE links (
    id             BIGSERIAL PRIMARY KEY,
    owner_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    node_id        BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    token_hash     BYTEA NOT NULL UNIQUE,
    password       TEXT,            -- argon2id PHC string, or NULL
    expires_at     BIGINT,          -- unix nanoseconds, or NULL
    downloads_left INTEGER CHECK (downloads_left >= 0),  -- NULL: no limit
    created_at     BIGINT NOT NULL
);
CREATE INDEX links_owner ON links (owner_id);
