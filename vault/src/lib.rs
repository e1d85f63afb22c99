//! `vault`: the cryptography of Cairn's encrypted vaults — file format, keys and their parsers,
//! no I/O and no policy (the `cairn` client and the browser build on it; the server never links
//! it; `tests` does, to play client and malicious server). Built so far (the design is `docs/design/vaults.md`):
//!
//! - [`keys`]: the derivations below a vault key (HKDF-SHA256, labels `cairn/v1/…`).
//! - [`cef`]: "CEF v1", one encrypted file version: 64 KiB chunks under AES-256-GCM with
//!   *synthetic* nonces (`HMAC-SHA256(K_n, "chunk" ‖ AAD ‖ plaintext)[..12]`, the SIV principle):
//!   the same plaintext under the same file key encrypts to the same bytes, so unchanged chunks
//!   stay unchanged and rsync deltas of ciphertext stay small, while no random-number failure can
//!   ever repeat a nonce for different data. Every chunk is bound to its file, index and
//!   finality; an authenticated trailer commits to the size and to every chunk's nonce, so a
//!   server that flips, swaps, moves, drops, appends or truncates chunks gets a typed error and
//!   no plaintext of a bad chunk.
//! - [`account`]: a member's seed (their X25519 and Ed25519 keys) wrapped under two secrets
//!   (passphrase and emergency-kit key) and under a recovery key.
//! - [`config`]: the owner-signed member list, epochs and wrapped keys of a vault.
//! - [`share`]: an epoch's vault key wrapped to each member with HPKE, fingerprints and
//!   safety numbers.
//! - [`manifest`]: each directory's signed, encrypted list of names, ids and file commitments,
//!   with a counter: what catches a file hidden, added, renamed, swapped or rolled back.
//!
//! Primitives come from RustCrypto (`aes-gcm`, `hkdf`, `hmac`, `sha2`, `argon2`), dalek
//! (`ed25519-dalek`) and `hpke`; nothing here is a home-made primitive.

pub mod account;
pub mod cef;
pub mod config;
pub mod keys;
pub mod manifest;
pub mod rng;
pub mod share;

/// Why a vault file or key could not be used. Each names what a malicious or broken server (or
/// disk) did, so callers can report it; none releases plaintext of what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a Cairn encrypted file (bad magic)")]
    NotCef,
    #[error("unsupported format version {0}")]
    Version(u8),
    #[error("unsupported cipher suite {0}")]
    Suite(u8),
    #[error("unsupported chunk size 2^{0}")]
    ChunkSize(u8),
    #[error("reserved header bytes are not zero")]
    Reserved,
    #[error("the file is truncated or its length does not match its trailer")]
    Length,
    #[error("the trailer failed authentication (wrong key, or tampered)")]
    Trailer,
    #[error("the trailer's parameters are out of range")]
    Oversized,
    #[error("chunk {0} failed authentication (tampered, swapped, moved or from another file)")]
    Chunk(u64),
    #[error("chunk {0} opened but its nonce does not commit to its plaintext (another key)")]
    Commitment(u64),
    #[error("the file belongs to another vault or file than expected")]
    Identity,
    #[error("the manifest is signed by someone who may not write to this vault")]
    Writer,
    #[error("the manifest's signature does not verify (tampered)")]
    Signature,
    #[error("the manifest does not open or parse (another key, or tampered)")]
    Manifest,
    #[error("the manifest is older than one already seen (counter {got} < {seen}): a rollback")]
    Rollback { seen: u64, got: u64 },
    #[error("the file is not the version its directory's manifest names (replaced or rolled back)")]
    Stale,
    #[error("wrong passphrase, emergency kit or recovery key (or the key blob was changed)")]
    Unlock,
    #[error("the key blob asks for a weaker key derivation than Cairn accepts (a downgrade)")]
    Weak,
    #[error("a member's public key is not a valid X25519 key")]
    Member,
}
