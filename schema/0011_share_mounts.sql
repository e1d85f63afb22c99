-- Where a share appears in a recipient's tree (see docs/design/sharing.md): one row per recipient
-- and shared node (a direct and a group share of one node make one mount), placed when the
-- recipient first sees the share and moved when they move it; `path` NULL: they hid it.
CREATE TABLE share_mounts (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    node_id BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    path    TEXT,
    PRIMARY KEY (user_id, node_id)
);
CREATE UNIQUE INDEX share_mounts_path ON share_mounts (user_id, path) WHERE path IS NOT NULL;
