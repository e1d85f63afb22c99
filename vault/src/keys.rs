//! Keys below a vault's key for one epoch (`V_e`): every derivation is HKDF-SHA256 with its own
//! `info` label, so no two uses ever share a key.

use hkdf::Hkdf;
use sha2_010::{Digest, Sha256};

/// A vault's key for one epoch (32 random bytes).
#[derive(Clone)]
pub struct VaultKey(pub [u8; 32]);

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey(…)")
    }
}

/// One file's keys: `enc` for AES-256-GCM, `nonce` for the synthetic nonces (HMAC-SHA256).
#[derive(Clone)]
pub struct FileKeys {
    pub(crate) enc: [u8; 32],
    pub(crate) nonce: [u8; 32],
}

impl std::fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKeys(…)")
    }
}

/// `K_enc ‖ K_n = HKDF(V_e, salt = file_id, info = "cairn/v1/file" ‖ key_gen)`. Nothing per
/// file is stored: the file's id and key generation (in its header) are enough. `key_gen` is
/// bumped, re-encrypting the file, long before one key has sealed 2^30 distinct chunks.
pub fn file_keys(vault: &VaultKey, file_id: &[u8; 16], key_gen: u32) -> FileKeys {
    let hk = Hkdf::<Sha256>::new(Some(file_id), &vault.0);
    let mut info = b"cairn/v1/file".to_vec();
    info.extend_from_slice(&key_gen.to_be_bytes());
    let mut okm = [0u8; 64];
    hk.expand(&info, &mut okm).expect("64 bytes is a valid HKDF-SHA256 output length");
    let (mut enc, mut nonce) = ([0u8; 32], [0u8; 32]);
    enc.copy_from_slice(&okm[..32]);
    nonce.copy_from_slice(&okm[32..]);
    FileKeys { enc, nonce }
}

/// The key of a vault's directory manifests: `HKDF(V_e, salt = vault_id, info = "cairn/v1/manifest")`.
pub fn manifest_key(vault: &VaultKey, vault_id: &[u8; 16]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(vault_id), &vault.0);
    let mut okm = [0u8; 32];
    hk.expand(b"cairn/v1/manifest", &mut okm).expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// The public commitment to an epoch's key, signed in the vault's config: a member accepts a
/// wrapped key only if it matches (`SHA-256("cairn/v1/vkc" ‖ V_e)`).
pub fn commitment(vault: &VaultKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cairn/v1/vkc");
    h.update(vault.0);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivations_differ_by_file_generation_and_use() {
        let v = VaultKey([7; 32]);
        let a = file_keys(&v, &[1; 16], 0);
        let b = file_keys(&v, &[2; 16], 0);
        let c = file_keys(&v, &[1; 16], 1);
        let all =
            [a.enc, a.nonce, b.enc, b.nonce, c.enc, c.nonce, manifest_key(&v, &[1; 16]), commitment(&v)];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        // Deterministic.
        assert_eq!(file_keys(&v, &[1; 16], 0).enc, a.enc);
    }
}
