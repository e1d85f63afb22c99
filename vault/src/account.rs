//! A member's account keys: a random 32-byte seed from which their X25519 (receiving vault
//! keys) and Ed25519 (signing manifests and configs) key pairs derive. The server keeps the seed
//! only wrapped, twice:
//!
//! - under **two secrets**: `KEK = HKDF(Argon2id(passphrase, salt) ‖ SK)`, where `SK` is 128
//!   random bits kept on the member's devices and in their printed emergency kit. The admin holds
//!   the wrapped blob but not `SK`, so a weak family passphrase cannot be brute-forced from it
//!   (the same reason 1Password has its Secret Key);
//! - under a 256-bit **recovery key**, printed, for a forgotten passphrase.
//!
//! ```text
//! "CAIRNACC" | version 1 | kind u8 (1 passphrase + kit, 2 recovery key) | memory KiB u32 | passes u32
//!   | lanes u32 | salt 16 | AES-256-GCM(KEK, nonce 12, seed, AAD = "cairn/v1/account" ‖ user id ‖ everything before the nonce) | nonce
//! ```
//!
//! Argon2id parameters below [`MIN_MEMORY_KIB`] / [`MIN_PASSES`] are refused when opening (a
//! server cannot downgrade them to make a guess cheap), and absurd ones too (a server cannot make
//! a device allocate without bound). The caller supplies the salt (random); the nonce is
//! synthetic, so wrapping needs no other randomness.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2_010::Sha256;

use crate::Error;

const MAGIC: &[u8; 8] = b"CAIRNACC";
const VERSION: u8 = 1;
const FIXED: usize = 8 + 1 + 1 + 4 + 4 + 4 + 16;
const NONCE: usize = 12;
const TAG: usize = 16;
/// Argon2id memory at least (64 MiB), and passes at least.
pub const MIN_MEMORY_KIB: u32 = 64 * 1024;
pub const MIN_PASSES: u32 = 3;
/// What a device accepts at most (a phone has little memory to spare).
pub const MAX_MEMORY_KIB: u32 = 2 * 1024 * 1024;
pub const MAX_PASSES: u32 = 64;

/// Argon2id cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl Default for Cost {
    fn default() -> Cost {
        Cost { memory_kib: MIN_MEMORY_KIB, passes: MIN_PASSES, lanes: 1 }
    }
}

/// An account's secret seed.
#[derive(Clone)]
pub struct Seed(pub [u8; 32]);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(…)")
    }
}

impl Seed {
    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(None, &self.0).expand(label, &mut out).expect("32 bytes");
        out
    }

    /// The Ed25519 key that signs this member's manifests and configs.
    pub fn signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.derive(b"cairn/v1/ed25519"))
    }

    /// The X25519 secret that vault keys are wrapped to (HPKE).
    pub fn agreement_secret(&self) -> [u8; 32] {
        self.derive(b"cairn/v1/x25519")
    }
}

/// How a wrapped seed is unlocked.
pub enum Unlock<'a> {
    /// The passphrase and the emergency kit's secret key.
    Passphrase { passphrase: &'a str, secret_key: &'a [u8; 16] },
    /// The printed recovery key.
    Recovery(&'a [u8; 32]),
}

fn kek(unlock: &Unlock<'_>, cost: Cost, salt: &[u8; 16]) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    match unlock {
        Unlock::Passphrase { passphrase, secret_key } => {
            let params = argon2::Params::new(cost.memory_kib, cost.passes, cost.lanes, Some(32))
                .map_err(|_| Error::Oversized)?;
            let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let mut stretched = [0u8; 32];
            a2.hash_password_into(passphrase.as_bytes(), salt, &mut stretched)
                .map_err(|_| Error::Oversized)?;
            let mut ikm = stretched.to_vec();
            ikm.extend_from_slice(*secret_key);
            Hkdf::<Sha256>::new(Some(salt), &ikm).expand(b"cairn/v1/kek", &mut out).expect("32 bytes");
        }
        Unlock::Recovery(key) => {
            Hkdf::<Sha256>::new(Some(salt), *key).expand(b"cairn/v1/recovery", &mut out).expect("32 bytes");
        }
    }
    Ok(out)
}

fn kind_of(unlock: &Unlock<'_>) -> u8 {
    match unlock {
        Unlock::Passphrase { .. } => 1,
        Unlock::Recovery(_) => 2,
    }
}

fn aad(user_id: &[u8], fixed: &[u8]) -> Vec<u8> {
    let mut a = b"cairn/v1/account".to_vec();
    a.extend_from_slice(&(user_id.len() as u32).to_be_bytes());
    a.extend_from_slice(user_id);
    a.extend_from_slice(fixed);
    a
}

/// Wrap `seed` for the account `user_id` (the server's id for it), unlocked by `unlock`, with a
/// fresh random `salt` from the caller. The cost is ignored for a recovery key.
pub fn wrap(
    seed: &Seed,
    user_id: &[u8],
    unlock: &Unlock<'_>,
    cost: Cost,
    salt: &[u8; 16],
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(FIXED + 32 + TAG + NONCE);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind_of(unlock));
    out.extend_from_slice(&cost.memory_kib.to_be_bytes());
    out.extend_from_slice(&cost.passes.to_be_bytes());
    out.extend_from_slice(&cost.lanes.to_be_bytes());
    out.extend_from_slice(salt);
    let key = kek(unlock, cost, salt)?;
    let aad = aad(user_id, &out);
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    m.update(&aad);
    m.update(&seed.0);
    let nonce: [u8; NONCE] = m.finalize().into_bytes()[..NONCE].try_into().expect("12");
    let mut buf = seed.0.to_vec();
    let tag = Aes256Gcm::new_from_slice(&key)
        .expect("32 bytes")
        .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &aad, &mut buf)
        .expect("seals 32 bytes");
    out.extend_from_slice(&buf);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&nonce);
    Ok(out)
}

/// Unwrap a seed the server handed back for `user_id`. A wrong passphrase, kit secret or
/// recovery key, another account's blob, or any change to it is [`Error::Unlock`]; weakened or
/// absurd parameters are refused before any work.
pub fn unwrap(blob: &[u8], user_id: &[u8], unlock: &Unlock<'_>) -> Result<Seed, Error> {
    if blob.len() != FIXED + 32 + TAG + NONCE {
        return Err(Error::Length);
    }
    if &blob[..8] != MAGIC {
        return Err(Error::NotCef);
    }
    if blob[8] != VERSION {
        return Err(Error::Version(blob[8]));
    }
    if blob[9] != kind_of(unlock) {
        return Err(Error::Unlock);
    }
    let u32_at = |i: usize| u32::from_be_bytes(blob[i..i + 4].try_into().expect("4"));
    let cost = Cost { memory_kib: u32_at(10), passes: u32_at(14), lanes: u32_at(18) };
    if matches!(unlock, Unlock::Passphrase { .. }) {
        if cost.memory_kib < MIN_MEMORY_KIB || cost.passes < MIN_PASSES || cost.lanes == 0 {
            return Err(Error::Weak);
        }
        if cost.memory_kib > MAX_MEMORY_KIB || cost.passes > MAX_PASSES || cost.lanes > 16 {
            return Err(Error::Oversized);
        }
    }
    let salt: [u8; 16] = blob[22..38].try_into().expect("16");
    let key = kek(unlock, cost, &salt)?;
    let aad = aad(user_id, &blob[..FIXED]);
    let (sealed, nonce) = blob[FIXED..].split_at(32 + TAG);
    let (ct, tag) = sealed.split_at(32);
    let mut buf = ct.to_vec();
    Aes256Gcm::new_from_slice(&key)
        .expect("32 bytes")
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            &aad,
            &mut buf,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| Error::Unlock)?;
    Ok(Seed(buf.try_into().expect("32 bytes")))
}
