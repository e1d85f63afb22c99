//! Sharing a vault in the family: an epoch's vault key wrapped to each member with HPKE (RFC 9180,
//! base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), and the fingerprints and
//! safety numbers members compare in person so the server cannot slip in a key of its own.
//!
//! The suite is RFC 9180's first (its Appendix A.1 vectors are in the tests) and WebCrypto has
//! every part of it; AES-128 wraps a 256-bit vault key at the 128-bit level X25519 offers anyway.
//! `info` binds the vault, the epoch and the recipient's fingerprint; a member accepts an
//! unwrapped key only if it matches the epoch's commitment the owner signed
//! ([`crate::keys::commitment`]): a server cannot hand a member a key of its own choosing.

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use sha2_010::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Error;
use crate::account::Seed;
use crate::keys::{VaultKey, commitment};

type Aead = hpke::aead::AesGcm128;
type Kdf = hpke::kdf::HkdfSha256;
type KemT = X25519HkdfSha256;

/// A member's public keys, as the vault's config lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// X25519, what vault keys are wrapped to.
    pub x25519: [u8; 32],
    /// Ed25519, what their manifests and configs are signed with.
    pub ed25519: [u8; 32],
}

impl Seed {
    fn agreement(&self) -> (<KemT as Kem>::PrivateKey, <KemT as Kem>::PublicKey) {
        KemT::derive_keypair(&self.agreement_secret())
    }

    /// This account's public keys.
    pub fn member(&self) -> Member {
        let x: [u8; 32] = self.agreement().1.to_bytes().into();
        Member { x25519: x, ed25519: self.signing_key().verifying_key().to_bytes() }
    }
}

/// A member's fingerprint: SHA-256 over both public keys.
pub fn fingerprint(m: &Member) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cairn/v1/fingerprint");
    h.update(m.x25519);
    h.update(m.ed25519);
    h.finalize().into()
}

/// The safety number two members read to each other: 60 digits in 12 groups of five, the same
/// whichever of the two computes it (each half from one fingerprint, in a fixed order).
pub fn safety_number(a: &Member, b: &Member) -> String {
    let (fa, fb) = (fingerprint(a), fingerprint(b));
    let (lo, hi) = if fa <= fb { (fa, fb) } else { (fb, fa) };
    let mut groups = Vec::with_capacity(12);
    for f in [lo, hi] {
        for k in 0..6 {
            // 40 bits of the fingerprint per group of five digits.
            let v = f[k * 5..k * 5 + 5].iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
            groups.push(format!("{:05}", v % 100_000));
        }
    }
    groups.join(" ")
}

fn info(vault_id: &[u8; 16], epoch: u32, to: &Member) -> Vec<u8> {
    let mut i = b"cairn/v1/vault-key".to_vec();
    i.extend_from_slice(vault_id);
    i.extend_from_slice(&epoch.to_be_bytes());
    i.extend_from_slice(&fingerprint(to));
    i
}

/// Wrap `key` (the vault's key for `epoch`) to the member `to`: the encapsulated key (32 B) then
/// the sealed key. `rng` gives the ephemeral key (the one place sharing needs randomness).
pub fn wrap(
    key: &VaultKey,
    vault_id: &[u8; 16],
    epoch: u32,
    to: &Member,
    rng: &mut impl hpke::rand_core::CryptoRng,
) -> Result<Vec<u8>, Error> {
    let pk = <KemT as Kem>::PublicKey::from_bytes(&to.x25519).map_err(|_| Error::Member)?;
    let (enc, sealed) = hpke::single_shot_seal::<Aead, Kdf, KemT, _>(
        &OpModeS::Base,
        &pk,
        &info(vault_id, epoch, to),
        &key.0,
        &commitment(key),
        rng,
    )
    .map_err(|_| Error::Member)?;
    let mut out = enc.to_bytes().to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Unwrap the vault key for `epoch` sent to this account, accepting it only if it matches the
/// owner-signed `commitment` of that epoch.
pub fn unwrap(
    seed: &Seed,
    wrapped: &[u8],
    vault_id: &[u8; 16],
    epoch: u32,
    expect: &[u8; 32],
) -> Result<VaultKey, Error> {
    if wrapped.len() != 32 + 32 + 16 {
        return Err(Error::Length);
    }
    let (sk, _) = seed.agreement();
    let enc = <KemT as Kem>::EncappedKey::from_bytes(&wrapped[..32]).map_err(|_| Error::Unlock)?;
    let key = hpke::single_shot_open::<Aead, Kdf, KemT>(
        &OpModeR::Base,
        &sk,
        &enc,
        &info(vault_id, epoch, &seed.member()),
        &wrapped[32..],
        expect,
    )
    .map_err(|_| Error::Unlock)?;
    let key = VaultKey(key.try_into().map_err(|_| Error::Unlock)?);
    if !bool::from(commitment(&key).ct_eq(expect)) {
        return Err(Error::Unlock);
    }
    Ok(key)
}
