-- Encrypted vaults (see store/src/vaults.rs and docs/design/vaults.md): a folder marked with the
-- vault's id. Its files are the clients' ciphertext; the server keeps no key.
CREATE TABLE vaults (
    node_id    BIGINT PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    vault_id   BYTEA NOT NULL UNIQUE CHECK (length(vault_id) = 16),
    created_ns BIGINT NOT NULL
);
CREATE INDEX vaults_user ON vaults (user_id);
