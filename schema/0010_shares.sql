-- Shares: a user's folder or file made visible to another user or a group, as viewer or editor
-- (see docs/design/sharing.md). The node is named by its file id, so a share follows renames
-- and moves in the owner's tree; purging the node ends it.

CREATE TABLE shares (
    id         BIGSERIAL PRIMARY KEY,
    owner_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    node_id    BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    -- Exactly one recipient: an account or a group.
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    group_id   BIGINT REFERENCES groups (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
    created_at BIGINT NOT NULL, -- unix nanoseconds
    CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    CHECK (user_id IS DISTINCT FROM owner_id)
);
CREATE UNIQUE INDEX shares_node_user ON shares (node_id, user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX shares_node_group ON shares (node_id, group_id) WHERE group_id IS NOT NULL;
CREATE INDEX shares_owner ON shares (owner_id);
CREATE INDEX shares_user ON shares (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX shares_group ON shares (group_id) WHERE group_id IS NOT NULL;
