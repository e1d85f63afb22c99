-- Each account's vault keys as the server holds them (see store/src/vaults.rs): the seed wrapped
-- twice on the member's device (passphrase + emergency kit; recovery key), and the public keys
-- others wrap vault keys to. Never a secret the server could use.
CREATE TABLE vault_accounts (
    user_id         BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    passphrase_blob BYTEA NOT NULL CHECK (length(passphrase_blob) <= 1024),
    recovery_blob   BYTEA NOT NULL CHECK (length(recovery_blob) <= 1024),
    x25519          BYTEA NOT NULL CHECK (length(x25519) = 32),
    ed25519         BYTEA NOT NULL CHECK (length(ed25519) = 32),
    updated_ns      BIGINT NOT NULL
);
