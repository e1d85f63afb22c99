//! Directory manifests: the signed, encrypted list of what one vault directory holds — the commit
//! point of every change to it. The file format alone cannot tell an old version of a file from
//! the current one, nor notice a file hidden, added, renamed or swapped by the server; the
//! manifest does:
//!
//! ```text
//! "CAIRNMAN" | version 1 | vault_id 16 | dir_id 16 | counter u64 BE | epoch u32 BE | writer key 32
//!   | nonce 12 | AES-256-GCM(K_meta, nonce, entries, AAD = "cairn/v1/dir" ‖ everything before the nonce)
//!   | Ed25519 signature 64 of everything before it
//! entries: count u32 BE, then per entry: kind u8 (1 file, 2 folder) | id 16 | size u64 | mtime i64
//!          | commit 32 (a file's: SHA-256 of its header and trailer; a folder's: zeros) | name length u16 | name
//! ```
//!
//! The nonce is synthetic (HMAC of the AAD and the entries, as in `cef`). Opening checks, in
//! order: the writer is one the caller trusts (the vault config's writers), the signature, the
//! vault and directory are the ones asked for, the counter is not older than the newest the
//! caller has seen (no rollback), then decrypts and parses the entries (names unique, non-empty,
//! without `/` or NUL, at most 255 bytes). A file's bytes are then checked against its entry with
//! [`commit_of`] and its header's file id.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::{Aes256Gcm, KeyInit};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2_010::{Digest, Sha256};

use crate::Error;

const MAGIC: &[u8; 8] = b"CAIRNMAN";
const VERSION: u8 = 1;
/// Magic, version, vault, directory, counter, epoch, writer.
const FIXED: usize = 8 + 1 + 16 + 16 + 8 + 4 + 32;
const NONCE: usize = 12;
const TAG: usize = 16;
const SIG: usize = 64;
/// Entries in one directory, at most (a parser must not be made to allocate without bound).
pub const MAX_ENTRIES: usize = 1 << 20;

/// A file or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Folder,
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    /// The file's or folder's id (a file's CEF header carries it).
    pub id: [u8; 16],
    /// Plaintext size (files).
    pub size: u64,
    /// Modification time, unix nanoseconds.
    pub mtime: i64,
    /// A file's [`commit_of`]; zeros for a folder.
    pub commit: [u8; 32],
}

/// One directory's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub vault_id: [u8; 16],
    pub dir_id: [u8; 16],
    /// Grows with every change: an older manifest is a rollback.
    pub counter: u64,
    pub epoch: u32,
    pub entries: Vec<Entry>,
}

/// What the caller expects of a manifest it opens.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub vault_id: [u8; 16],
    pub dir_id: [u8; 16],
    /// The newest counter seen for this directory (0 if none).
    pub min_counter: u64,
    /// Who may write manifests of this vault (from its signed config).
    pub writers: &'a [VerifyingKey],
}

/// A file's commitment in its directory's manifest: SHA-256 over its CEF header and trailer (the
/// trailer commits to every chunk's nonce, and so to every chunk).
pub fn commit_of(header: &[u8], trailer: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cairn/v1/commit");
    h.update(header);
    h.update(trailer);
    h.finalize().into()
}

/// Check a file's CEF header and trailer against its entry: the same file (`Identity`
/// otherwise) and the version the manifest names (`Stale` otherwise).
pub fn check_file(entry: &Entry, header: &[u8], trailer: &[u8]) -> Result<(), Error> {
    let h = crate::cef::Header::parse(header)?;
    if h.file_id != entry.id {
        return Err(Error::Identity);
    }
    if commit_of(&header[..crate::cef::HEADER_LEN], trailer) != entry.commit {
        return Err(Error::Stale);
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + entries.len() * 80);
    b.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        b.push(match e.kind {
            Kind::File => 1,
            Kind::Folder => 2,
        });
        b.extend_from_slice(&e.id);
        b.extend_from_slice(&e.size.to_be_bytes());
        b.extend_from_slice(&e.mtime.to_be_bytes());
        b.extend_from_slice(&e.commit);
        b.extend_from_slice(&(e.name.len() as u16).to_be_bytes());
        b.extend_from_slice(e.name.as_bytes());
    }
    b
}

fn decode_entries(b: &[u8]) -> Result<Vec<Entry>, Error> {
    let bad = || Error::Manifest;
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], Error> {
        let s = b.get(at..at + n).ok_or_else(bad)?;
        at += n;
        Ok(s)
    };
    let count = u32::from_be_bytes(take(4)?.try_into().expect("4")) as usize;
    if count > MAX_ENTRIES {
        return Err(Error::Oversized);
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let kind = match take(1)?[0] {
            1 => Kind::File,
            2 => Kind::Folder,
            _ => return Err(bad()),
        };
        let id: [u8; 16] = take(16)?.try_into().expect("16");
        let size = u64::from_be_bytes(take(8)?.try_into().expect("8"));
        let mtime = i64::from_be_bytes(take(8)?.try_into().expect("8"));
        let commit: [u8; 32] = take(32)?.try_into().expect("32");
        let len = u16::from_be_bytes(take(2)?.try_into().expect("2")) as usize;
        let name = std::str::from_utf8(take(len)?).map_err(|_| bad())?.to_owned();
        if !valid_name(&name) {
            return Err(bad());
        }
        entries.push(Entry { name, kind, id, size, mtime, commit });
    }
    if at != b.len() {
        return Err(bad());
    }
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad());
    }
    Ok(entries)
}

fn nonce_of(key: &[u8; 32], aad: &[u8], body: &[u8]) -> [u8; NONCE] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(b"cairn/v1/manifest-nonce");
    m.update(aad);
    m.update(body);
    m.finalize().into_bytes()[..NONCE].try_into().expect("12 bytes")
}

fn aad(fixed: &[u8]) -> Vec<u8> {
    let mut a = b"cairn/v1/dir".to_vec();
    a.extend_from_slice(fixed);
    a
}

/// Seal `m` under the vault's manifest key, signed by `writer`.
///
/// # Panics
/// On an entry whose name is not a valid name, or duplicate names: a caller's bug.
pub fn seal(key: &[u8; 32], writer: &SigningKey, m: &Manifest) -> Vec<u8> {
    assert!(m.entries.iter().all(|e| valid_name(&e.name)), "invalid name in a manifest");
    let body = encode_entries(&m.entries);
    decode_entries(&body).expect("a manifest's own entries parse");
    let mut out = Vec::with_capacity(FIXED + NONCE + body.len() + TAG + SIG);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&m.vault_id);
    out.extend_from_slice(&m.dir_id);
    out.extend_from_slice(&m.counter.to_be_bytes());
    out.extend_from_slice(&m.epoch.to_be_bytes());
    out.extend_from_slice(writer.verifying_key().as_bytes());
    let aad = aad(&out);
    let nonce = nonce_of(key, &aad, &body);
    let mut buf = body;
    let tag = Aes256Gcm::new_from_slice(key)
        .expect("a 32-byte key")
        .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &aad, &mut buf)
        .expect("AES-GCM seals any manifest");
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out.extend_from_slice(&tag);
    let sig = writer.sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// Open a manifest the server handed over, checking everything [`Expect`] says (see the
/// module doc for the order).
pub fn open(key: &[u8; 32], bytes: &[u8], expect: &Expect<'_>) -> Result<Manifest, Error> {
    if bytes.len() < FIXED + NONCE + 4 + TAG + SIG {
        return Err(Error::Length);
    }
    if &bytes[..8] != MAGIC {
        return Err(Error::NotCef);
    }
    if bytes[8] != VERSION {
        return Err(Error::Version(bytes[8]));
    }
    let writer_bytes: [u8; 32] = bytes[FIXED - 32..FIXED].try_into().expect("32 bytes");
    let writer = expect.writers.iter().find(|w| w.as_bytes() == &writer_bytes).ok_or(Error::Writer)?;
    let (signed, sig) = bytes.split_at(bytes.len() - SIG);
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    writer.verify_strict(signed, &sig).map_err(|_| Error::Signature)?;
    let field = |r: std::ops::Range<usize>| &bytes[r];
    let vault_id: [u8; 16] = field(9..25).try_into().expect("16");
    let dir_id: [u8; 16] = field(25..41).try_into().expect("16");
    if vault_id != expect.vault_id || dir_id != expect.dir_id {
        return Err(Error::Identity);
    }
    let counter = u64::from_be_bytes(field(41..49).try_into().expect("8"));
    if counter < expect.min_counter {
        return Err(Error::Rollback { seen: expect.min_counter, got: counter });
    }
    let epoch = u32::from_be_bytes(field(49..53).try_into().expect("4"));
    let aad = aad(&bytes[..FIXED]);
    let nonce: [u8; NONCE] = bytes[FIXED..FIXED + NONCE].try_into().expect("12");
    let sealed = &signed[FIXED + NONCE..];
    let (ct, tag) = sealed.split_at(sealed.len() - TAG);
    let mut body = ct.to_vec();
    Aes256Gcm::new_from_slice(key)
        .expect("a 32-byte key")
        .decrypt_in_place_detached(
            GenericArray::from_slice(&nonce),
            &aad,
            &mut body,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| Error::Manifest)?;
    if nonce_of(key, &aad, &body) != nonce {
        return Err(Error::Manifest);
    }
    let entries = decode_entries(&body)?;
    Ok(Manifest { vault_id, dir_id, counter, epoch, entries })
}
