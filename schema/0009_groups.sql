-- Groups of accounts (e.g. "family"), managed by admins; shares name them as recipients.

CREATE TABLE groups (
    id         BIGSERIAL PRIMARY KEY,
    -- Same rules as account names: 1-64 of a-z 0-9 . _ -, starting with a letter or digit.
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL -- unix nanoseconds
);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);
