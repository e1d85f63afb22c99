//! "CEF v1", one encrypted version of one file:
//!
//! ```text
//! header (64 B) : "CAIRNCEF" | version 1 | suite 1 | log2 chunk 16 | 13 zero bytes
//!                 | vault_id 16 | file_id 16 | epoch u32 BE | key_gen u32 BE
//! chunk i       : AES-256-GCM(K_enc, N_i, P_i, AAD_i) = ciphertext ‖ tag 16   (P_i: 64 KiB, the last shorter or empty)
//! AAD_i         : SHA-256(header) ‖ i u64 BE ‖ final u8
//! N_i           : HMAC-SHA256(K_n, "chunk" ‖ AAD_i ‖ P_i)[..12]   (not stored with the chunk)
//! trailer       : AES-256-GCM(K_enc, N_t, size u64 ‖ n u64 ‖ N_0 … N_{n-1}, SHA-256(header) ‖ "trailer")
//!                 ‖ N_t 12 ‖ trailer length u32 BE     N_t = HMAC(K_n, "trailer" ‖ SHA-256(header) ‖ payload)[..12]
//! ```
//!
//! Chunk `i` starts at `64 + i·(65536 + 16)`, so a range read needs the header, the trailer and
//! the chunks it covers ([`Layout`]). Opening a chunk checks its tag under the nonce the
//! authenticated trailer lists, then recomputes the nonce from the plaintext and compares it in
//! constant time: a ciphertext that happens to open under another key is refused (plain GCM does
//! not commit to its key). An empty file is the header, one empty final chunk and the trailer.
//! Overhead: 16 B per 64 KiB chunk and 12 B of nonce in the trailer (0.043 %), plus 112 B per file.

use std::ops::Range;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::{Aes256Gcm, KeyInit};
use hmac::{Hmac, Mac};
use sha2_010::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Error;
use crate::keys::FileKeys;

/// Header length.
pub const HEADER_LEN: usize = 64;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 1 << 16;
const TAG: usize = 16;
const NONCE: usize = 12;
const MAGIC: &[u8; 8] = b"CAIRNCEF";
const VERSION: u8 = 1;
/// AES-256-GCM, HMAC-SHA256, HKDF-SHA256.
const SUITE: u8 = 1;
const LOG2_CHUNK: u8 = 16;
/// Most chunks under one file key (then `key_gen` moves on): 2^30, far inside NIST SP 800-38D's
/// bound for 96-bit nonces.
pub const MAX_CHUNKS: u64 = 1 << 30;

/// What a file's header says: whose file it is, and under which keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub vault_id: [u8; 16],
    pub file_id: [u8; 16],
    pub epoch: u32,
    pub key_gen: u32,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8] = VERSION;
        b[9] = SUITE;
        b[10] = LOG2_CHUNK;
        b[24..40].copy_from_slice(&self.vault_id);
        b[40..56].copy_from_slice(&self.file_id);
        b[56..60].copy_from_slice(&self.epoch.to_be_bytes());
        b[60..64].copy_from_slice(&self.key_gen.to_be_bytes());
        b
    }

    /// Parse a header, refusing every version, suite and chunk size but ours (no downgrade).
    pub fn parse(b: &[u8]) -> Result<Header, Error> {
        if b.len() < HEADER_LEN {
            return Err(Error::Length);
        }
        if &b[..8] != MAGIC {
            return Err(Error::NotCef);
        }
        match (b[8], b[9], b[10]) {
            (VERSION, SUITE, LOG2_CHUNK) => {}
            (VERSION, SUITE, c) => return Err(Error::ChunkSize(c)),
            (VERSION, s, _) => return Err(Error::Suite(s)),
            (v, _, _) => return Err(Error::Version(v)),
        }
        if b[11..24].iter().any(|x| *x != 0) {
            return Err(Error::Reserved);
        }
        let take16 = |r: Range<usize>| -> [u8; 16] { b[r].try_into().expect("16 bytes") };
        let take4 = |r: Range<usize>| -> u32 { u32::from_be_bytes(b[r].try_into().expect("4 bytes")) };
        Ok(Header {
            vault_id: take16(24..40),
            file_id: take16(40..56),
            epoch: take4(56..60),
            key_gen: take4(60..64),
        })
    }
}

/// The number of chunks of a file of `size` bytes (at least one: an empty file has an empty one).
pub fn chunks_of(size: u64) -> u64 {
    size.div_ceil(CHUNK as u64).max(1)
}

/// The length of the encrypted file of `size` plaintext bytes.
pub fn encrypted_len(size: u64) -> u64 {
    let n = chunks_of(size);
    HEADER_LEN as u64 + size + n * TAG as u64 + trailer_len(n) + (NONCE + 4) as u64
}

/// The trailer's ciphertext and tag, for `n` chunks.
fn trailer_len(n: u64) -> u64 {
    16 + n * NONCE as u64 + TAG as u64
}

type HmacSha256 = Hmac<Sha256>;

fn synthetic_nonce(key: &[u8; 32], label: &[u8], parts: &[&[u8]]) -> [u8; NONCE] {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(label);
    for p in parts {
        m.update(p);
    }
    let full = m.finalize().into_bytes();
    full[..NONCE].try_into().expect("12 bytes")
}

fn chunk_aad(hh: &[u8; 32], i: u64, last: bool) -> [u8; 41] {
    let mut aad = [0u8; 41];
    aad[..32].copy_from_slice(hh);
    aad[32..40].copy_from_slice(&i.to_be_bytes());
    aad[40] = u8::from(last);
    aad
}

fn cipher(keys: &FileKeys) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(&keys.enc).expect("a 32-byte key")
}

fn seal(c: &Aes256Gcm, nonce: &[u8; NONCE], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(plain.len() + TAG);
    buf.extend_from_slice(plain);
    let tag = c
        .encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, &mut buf)
        .expect("AES-GCM seals any message under 64 GiB");
    buf.extend_from_slice(&tag);
    buf
}

fn open(c: &Aes256Gcm, nonce: &[u8; NONCE], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (ct, tag) = sealed.split_at(sealed.len().checked_sub(TAG)?);
    let mut buf = ct.to_vec();
    c.decrypt_in_place_detached(
        GenericArray::from_slice(nonce),
        aad,
        &mut buf,
        GenericArray::from_slice(tag),
    )
    .ok()?;
    Some(buf)
}

/// Encrypts one file version, chunk by chunk (memory: one chunk and the nonce list).
pub struct Encryptor {
    keys: FileKeys,
    cipher: Aes256Gcm,
    hh: [u8; 32],
    size: u64,
    nonces: Vec<[u8; NONCE]>,
    done: bool,
}

impl Encryptor {
    /// Start a file: the header's bytes come first in the file.
    pub fn new(keys: &FileKeys, header: &Header) -> (Encryptor, [u8; HEADER_LEN]) {
        let bytes = header.encode();
        let hh: [u8; 32] = Sha256::digest(bytes).into();
        let e = Encryptor {
            keys: keys.clone(),
            cipher: cipher(keys),
            hh,
            size: 0,
            nonces: Vec::new(),
            done: false,
        };
        (e, bytes)
    }

    /// Seal the next chunk: exactly [`CHUNK`] bytes, or at most that for the `last` one.
    ///
    /// # Panics
    /// On a short chunk that is not the last, a chunk after the last, or more than
    /// [`MAX_CHUNKS`] chunks: a caller's bug, never data-dependent.
    pub fn chunk(&mut self, plain: &[u8], last: bool) -> Vec<u8> {
        assert!(!self.done, "a chunk after the last one");
        assert!(plain.len() == CHUNK || (last && plain.len() <= CHUNK), "only the last chunk may be short");
        let i = self.nonces.len() as u64;
        assert!(i < MAX_CHUNKS, "too many chunks for one file key");
        let aad = chunk_aad(&self.hh, i, last);
        let nonce = synthetic_nonce(&self.keys.nonce, b"chunk", &[&aad, plain]);
        self.nonces.push(nonce);
        self.size += plain.len() as u64;
        self.done = last;
        seal(&self.cipher, &nonce, &aad, plain)
    }

    /// The trailer, after the last chunk.
    ///
    /// # Panics
    /// Before the last chunk.
    pub fn finish(self) -> Vec<u8> {
        assert!(self.done, "finish before the last chunk");
        let mut payload = Vec::with_capacity(16 + self.nonces.len() * NONCE);
        payload.extend_from_slice(&self.size.to_be_bytes());
        payload.extend_from_slice(&(self.nonces.len() as u64).to_be_bytes());
        for n in &self.nonces {
            payload.extend_from_slice(n);
        }
        let nt = synthetic_nonce(&self.keys.nonce, b"trailer", &[&self.hh, &payload]);
        let mut aad = self.hh.to_vec();
        aad.extend_from_slice(b"trailer");
        let mut out = seal(&self.cipher, &nt, &aad, &payload);
        let len = out.len() as u32;
        out.extend_from_slice(&nt);
        out.extend_from_slice(&len.to_be_bytes());
        out
    }
}

/// Encrypt a whole file held in memory.
pub fn encrypt(keys: &FileKeys, header: &Header, plain: &[u8]) -> Vec<u8> {
    let (mut e, head) = Encryptor::new(keys, header);
    let mut out = Vec::with_capacity(encrypted_len(plain.len() as u64) as usize);
    out.extend_from_slice(&head);
    let n = chunks_of(plain.len() as u64) as usize;
    for i in 0..n {
        let end = ((i + 1) * CHUNK).min(plain.len());
        out.extend_from_slice(&e.chunk(&plain[i * CHUNK..end], i + 1 == n));
    }
    out.extend_from_slice(&e.finish());
    out
}

/// An encrypted file's shape, read from its header and its authenticated trailer: what a range
/// read needs before it fetches chunks.
#[derive(Debug, Clone)]
pub struct Layout {
    pub header: Header,
    hh: [u8; 32],
    /// Plaintext bytes.
    pub size: u64,
    nonces: Vec<[u8; NONCE]>,
}

impl Layout {
    /// How many bytes at the end of a file of `file_len` bytes hold the trailer, from its last 4
    /// bytes (read those first; then read that many and call [`Layout::open`]).
    pub fn trailer_span(file_len: u64, last4: &[u8]) -> Result<u64, Error> {
        let len = u32::from_be_bytes(last4.try_into().map_err(|_| Error::Length)?) as u64;
        // At least size, count and one nonce, and a whole number of nonces.
        if len < trailer_len(1) || (len - trailer_len(0)) % NONCE as u64 != 0 {
            return Err(Error::Oversized);
        }
        let span = len + (NONCE + 4) as u64;
        if HEADER_LEN as u64 + TAG as u64 + span > file_len {
            return Err(Error::Length);
        }
        Ok(span)
    }

    /// Read a file's layout from its first [`HEADER_LEN`] bytes, its length, and its last
    /// `trailer` bytes (as [`Layout::trailer_span`] says). Checks the trailer's tag and nonce and
    /// that the length is exactly what the trailer promises.
    pub fn open(keys: &FileKeys, head: &[u8], file_len: u64, trailer: &[u8]) -> Result<Layout, Error> {
        let header = Header::parse(head)?;
        let hh: [u8; 32] = Sha256::digest(&head[..HEADER_LEN]).into();
        let span =
            Layout::trailer_span(file_len, trailer.get(trailer.len().saturating_sub(4)..).unwrap_or(&[]))?;
        if trailer.len() as u64 != span {
            return Err(Error::Length);
        }
        let sealed = &trailer[..trailer.len() - NONCE - 4];
        let nt: [u8; NONCE] = trailer[sealed.len()..sealed.len() + NONCE].try_into().expect("12 bytes");
        let mut aad = hh.to_vec();
        aad.extend_from_slice(b"trailer");
        let payload = open(&cipher(keys), &nt, &aad, sealed).ok_or(Error::Trailer)?;
        let expect = synthetic_nonce(&keys.nonce, b"trailer", &[&hh, &payload]);
        if !bool::from(expect.ct_eq(&nt)) {
            return Err(Error::Trailer);
        }
        let size = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
        let n = u64::from_be_bytes(payload[8..16].try_into().expect("8 bytes"));
        if n > MAX_CHUNKS || n != chunks_of(size) || payload.len() as u64 != 16 + n * NONCE as u64 {
            return Err(Error::Oversized);
        }
        if file_len != encrypted_len(size) {
            return Err(Error::Length);
        }
        let nonces = payload[16..].chunks_exact(NONCE).map(|c| c.try_into().expect("12 bytes")).collect();
        Ok(Layout { header, hh, size, nonces })
    }

    /// Chunks in the file.
    pub fn chunks(&self) -> u64 {
        self.nonces.len() as u64
    }

    /// Where chunk `i` lies in the file (tag included).
    pub fn chunk_span(&self, i: u64) -> Range<u64> {
        let start = HEADER_LEN as u64 + i * (CHUNK + TAG) as u64;
        let plain = (self.size - i * CHUNK as u64).min(CHUNK as u64);
        start..start + plain + TAG as u64
    }

    /// The chunks holding the plaintext bytes `range` (clamped to the file).
    pub fn chunks_for(&self, range: Range<u64>) -> Range<u64> {
        let end = range.end.min(self.size);
        if range.start >= end {
            return 0..0;
        }
        range.start / CHUNK as u64..end.div_ceil(CHUNK as u64)
    }

    /// Open chunk `i` (its bytes as [`Layout::chunk_span`] places them): its plaintext, or why not.
    pub fn open_chunk(&self, keys: &FileKeys, i: u64, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let Some(nonce) = self.nonces.get(i as usize) else { return Err(Error::Chunk(i)) };
        let span = self.chunk_span(i);
        if sealed.len() as u64 != span.end - span.start {
            return Err(Error::Chunk(i));
        }
        let aad = chunk_aad(&self.hh, i, i + 1 == self.chunks());
        let plain = open(&cipher(keys), nonce, &aad, sealed).ok_or(Error::Chunk(i))?;
        let expect = synthetic_nonce(&keys.nonce, b"chunk", &[&aad, &plain]);
        if !bool::from(expect.ct_eq(nonce)) {
            return Err(Error::Commitment(i));
        }
        Ok(plain)
    }
}

/// Decrypt a whole file held in memory, checking that it is the file `expect` names (its vault
/// and file id: a server cannot hand over another file of the same vault in its place).
pub fn decrypt(keys: &FileKeys, file: &[u8], expect: Option<&Header>) -> Result<Vec<u8>, Error> {
    if file.len() < HEADER_LEN + 4 {
        return Err(Error::Length);
    }
    let len = file.len() as u64;
    let span = Layout::trailer_span(len, &file[file.len() - 4..])?;
    let layout = Layout::open(keys, &file[..HEADER_LEN], len, &file[file.len() - span as usize..])?;
    if expect.is_some_and(|h| h.vault_id != layout.header.vault_id || h.file_id != layout.header.file_id) {
        return Err(Error::Identity);
    }
    // Each chunk is decrypted in place in the output (one cipher, one copy); on any failure
    // the output is dropped, so no plaintext of a bad chunk leaves.
    let c = cipher(keys);
    let mut out = Vec::with_capacity(layout.size as usize);
    for i in 0..layout.chunks() {
        let r = layout.chunk_span(i);
        let sealed = &file[r.start as usize..r.end as usize];
        let (ct, tag) = sealed.split_at(sealed.len() - TAG);
        let at = out.len();
        out.extend_from_slice(ct);
        let nonce = &layout.nonces[i as usize];
        let aad = chunk_aad(&layout.hh, i, i + 1 == layout.chunks());
        c.decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            &aad,
            &mut out[at..],
            GenericArray::from_slice(tag),
        )
        .map_err(|_| Error::Chunk(i))?;
        let expect = synthetic_nonce(&keys.nonce, b"chunk", &[&aad, &out[at..]]);
        if !bool::from(expect.ct_eq(nonce)) {
            return Err(Error::Commitment(i));
        }
    }
    Ok(out)
}
