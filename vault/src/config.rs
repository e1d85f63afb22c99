//! A vault's config: who its members are (their public keys and roles), each epoch's key
//! commitment and the key wrapped to each member, with a counter — signed by the owner, whose
//! key a member pins when they first join (after comparing safety numbers). The server stores it
//! and can neither add a member, nor change a role or a key, nor roll it back unnoticed.
//!
//! ```text
//! "CAIRNVCF" | version 1 | vault_id 16 | counter u64 | owner Ed25519 key 32
//!   | members u16, each: role u8 (1 reader, 2 writer) | X25519 key 32 | Ed25519 key 32
//!   | epochs u16, each: epoch u32 | commitment 32 | wraps u16, each: member u16 | length u16 | wrapped
//!   | Ed25519 signature 64 by the owner of everything before it
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::Error;
use crate::account::Seed;
use crate::keys::VaultKey;
use crate::share::{self, Member};

const MAGIC: &[u8; 8] = b"CAIRNVCF";
const VERSION: u8 = 1;
const SIG: usize = 64;

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads (holds the keys).
    Reader,
    /// Reads and writes (signs manifests).
    Writer,
}

/// One epoch: its key's commitment and the key wrapped to members (by index in `members`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    pub epoch: u32,
    pub commitment: [u8; 32],
    pub wrapped: Vec<(u16, Vec<u8>)>,
}

/// A vault's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub vault_id: [u8; 16],
    /// Grows with every change: an older config is a rollback.
    pub counter: u64,
    /// The owner's Ed25519 key (also a writer).
    pub owner: [u8; 32],
    pub members: Vec<(Role, Member)>,
    pub epochs: Vec<Epoch>,
}

impl Config {
    /// Who may sign this vault's manifests: the owner and the writers.
    pub fn writers(&self) -> Vec<VerifyingKey> {
        let keys = std::iter::once(self.owner)
            .chain(self.members.iter().filter(|(r, _)| *r == Role::Writer).map(|(_, m)| m.ed25519));
        keys.filter_map(|k| VerifyingKey::from_bytes(&k).ok()).collect()
    }

    /// The vault key of `epoch` for the member whose seed this is, checked against the epoch's
    /// commitment; not a member of it: [`Error::Unlock`].
    pub fn key_for(&self, seed: &Seed, epoch: u32) -> Result<VaultKey, Error> {
        let me = seed.member();
        let e = self.epochs.iter().find(|e| e.epoch == epoch).ok_or(Error::Unlock)?;
        let idx = self.members.iter().position(|(_, m)| *m == me).ok_or(Error::Unlock)?;
        let (_, wrapped) = e.wrapped.iter().find(|(i, _)| *i as usize == idx).ok_or(Error::Unlock)?;
        share::unwrap(seed, wrapped, &self.vault_id, epoch, &e.commitment)
    }
}

fn encode(c: &Config) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(MAGIC);
    b.push(VERSION);
    b.extend_from_slice(&c.vault_id);
    b.extend_from_slice(&c.counter.to_be_bytes());
    b.extend_from_slice(&c.owner);
    b.extend_from_slice(&(c.members.len() as u16).to_be_bytes());
    for (role, m) in &c.members {
        b.push(match role {
            Role::Reader => 1,
            Role::Writer => 2,
        });
        b.extend_from_slice(&m.x25519);
        b.extend_from_slice(&m.ed25519);
    }
    b.extend_from_slice(&(c.epochs.len() as u16).to_be_bytes());
    for e in &c.epochs {
        b.extend_from_slice(&e.epoch.to_be_bytes());
        b.extend_from_slice(&e.commitment);
        b.extend_from_slice(&(e.wrapped.len() as u16).to_be_bytes());
        for (i, w) in &e.wrapped {
            b.extend_from_slice(&i.to_be_bytes());
            b.extend_from_slice(&(w.len() as u16).to_be_bytes());
            b.extend_from_slice(w);
        }
    }
    b
}

fn decode(b: &[u8]) -> Result<Config, Error> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], Error> {
        let s = b.get(at..at + n).ok_or(Error::Length)?;
        at += n;
        Ok(s)
    };
    if take(8)? != MAGIC {
        return Err(Error::NotCef);
    }
    let version = take(1)?[0];
    if version != VERSION {
        return Err(Error::Version(version));
    }
    let vault_id: [u8; 16] = take(16)?.try_into().expect("16");
    let counter = u64::from_be_bytes(take(8)?.try_into().expect("8"));
    let owner: [u8; 32] = take(32)?.try_into().expect("32");
    let n = u16::from_be_bytes(take(2)?.try_into().expect("2")) as usize;
    let mut members = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let role = match take(1)?[0] {
            1 => Role::Reader,
            2 => Role::Writer,
            _ => return Err(Error::Manifest),
        };
        let x25519: [u8; 32] = take(32)?.try_into().expect("32");
        let ed25519: [u8; 32] = take(32)?.try_into().expect("32");
        members.push((role, Member { x25519, ed25519 }));
    }
    let n = u16::from_be_bytes(take(2)?.try_into().expect("2")) as usize;
    let mut epochs = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let epoch = u32::from_be_bytes(take(4)?.try_into().expect("4"));
        let commitment: [u8; 32] = take(32)?.try_into().expect("32");
        let w = u16::from_be_bytes(take(2)?.try_into().expect("2")) as usize;
        let mut wrapped = Vec::with_capacity(w.min(256));
        for _ in 0..w {
            let i = u16::from_be_bytes(take(2)?.try_into().expect("2"));
            if i as usize >= members.len() {
                return Err(Error::Manifest);
            }
            let len = u16::from_be_bytes(take(2)?.try_into().expect("2")) as usize;
            wrapped.push((i, take(len)?.to_vec()));
        }
        epochs.push(Epoch { epoch, commitment, wrapped });
    }
    if at != b.len() {
        return Err(Error::Length);
    }
    Ok(Config { vault_id, counter, owner, members, epochs })
}

/// Sign `c` as its owner.
///
/// # Panics
/// If `owner` is not the config's owner: a caller's bug.
pub fn seal(owner: &SigningKey, c: &Config) -> Vec<u8> {
    assert_eq!(owner.verifying_key().to_bytes(), c.owner, "signed by another than its owner");
    let mut b = encode(c);
    let sig = owner.sign(&b);
    b.extend_from_slice(&sig.to_bytes());
    b
}

/// Open a config the server handed over: signed by the pinned `owner`, of this vault, not older
/// than `min_counter`.
pub fn open(bytes: &[u8], vault_id: &[u8; 16], owner: &[u8; 32], min_counter: u64) -> Result<Config, Error> {
    if bytes.len() < SIG + 8 + 1 + 16 + 8 + 32 {
        return Err(Error::Length);
    }
    let (body, sig) = bytes.split_at(bytes.len() - SIG);
    if &body[8 + 1 + 16 + 8..8 + 1 + 16 + 8 + 32] != owner {
        return Err(Error::Writer);
    }
    let key = VerifyingKey::from_bytes(owner).map_err(|_| Error::Writer)?;
    key.verify_strict(body, &Signature::from_bytes(sig.try_into().expect("64 bytes")))
        .map_err(|_| Error::Signature)?;
    let c = decode(body)?;
    if &c.vault_id != vault_id {
        return Err(Error::Identity);
    }
    if c.counter < min_counter {
        return Err(Error::Rollback { seen: min_counter, got: c.counter });
    }
    Ok(c)
}
