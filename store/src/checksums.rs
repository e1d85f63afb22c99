//! Digests of a content other than its blake3, for clients that name their own: the Nextcloud
//! and ownCloud clients send `OC-Checksum: SHA1:<hex>` with an upload and compare the
//! `oc:checksums` they list against their files.
//!
//! A checksum sent with a write is verified against the bytes as they arrive (a mismatch
//! refuses the write before anything is committed), then remembered by the content's blake3.
//! A digest is a property of the bytes alone, so the table can never go stale: it holds for
//! every file, version or copy with those bytes, and for no other.

use std::collections::HashMap;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::db::Cached;
use crate::types::ContentHash;
use crate::{Error, ErrorKind, Result, Store};

/// A digest algorithm a client may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgo {
    /// `SHA1` (the Nextcloud clients' default).
    Sha1,
    /// `MD5`.
    Md5,
    /// `SHA256`.
    Sha256,
}

impl ChecksumAlgo {
    /// The name the clients use.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgo::Sha1 => "SHA1",
            ChecksumAlgo::Md5 => "MD5",
            ChecksumAlgo::Sha256 => "SHA256",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            ChecksumAlgo::Sha1 => 40,
            ChecksumAlgo::Md5 => 32,
            ChecksumAlgo::Sha256 => 64,
        }
    }
}

/// A client's claim about a content: `TYPE:hex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentChecksum {
    /// The algorithm.
    pub algo: ChecksumAlgo,
    /// The digest, lowercase hex.
    pub hex: String,
}

impl ContentChecksum {
    /// Parse `TYPE:hex` (the type in any case). `Ok(None)` for a type Cairn does not compute
    /// (`ADLER32`, `SHA3-256`): such a claim is neither checked nor remembered.
    pub fn parse(raw: &str) -> Result<Option<ContentChecksum>> {
        let bad =
            || Error::new(ErrorKind::InvalidInput, format!("malformed checksum {raw:?}: expected TYPE:hex"));
        let (ty, hex) = raw.trim().split_once(':').ok_or_else(bad)?;
        let algo = match ty.to_ascii_uppercase().as_str() {
            "SHA1" => ChecksumAlgo::Sha1,
            "MD5" => ChecksumAlgo::Md5,
            "SHA256" => ChecksumAlgo::Sha256,
            _ => return Ok(None),
        };
        let hex = hex.trim().to_ascii_lowercase();
        if hex.len() != algo.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Some(ContentChecksum { algo, hex }))
    }

    /// A digester for this checksum's algorithm.
    pub(crate) fn digester(&self) -> Digester {
        match self.algo {
            ChecksumAlgo::Sha1 => Digester::Sha1(Sha1::new()),
            ChecksumAlgo::Md5 => Digester::Md5(Md5::new()),
            ChecksumAlgo::Sha256 => Digester::Sha256(Sha256::new()),
        }
    }

    /// Compare with what `d` computed over the bytes received.
    pub(crate) fn verify(&self, d: Digester) -> Result<()> {
        let got = d.finish();
        if got != self.hex {
            return Err(Error::new(
                ErrorKind::ChecksumMismatch,
                format!(
                    "the computed checksum does not match the one received from the client ({}:{got})",
                    self.algo.name()
                ),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for ContentChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algo.name(), self.hex)
    }
}

/// A running digest.
pub(crate) enum Digester {
    Sha1(Sha1),
    Md5(Md5),
    Sha256(Sha256),
}

impl Digester {
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha1(h) => h.update(data),
            Digester::Md5(h) => h.update(data),
            Digester::Sha256(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            Digester::Sha1(h) => hex::encode(h.finalize()),
            Digester::Md5(h) => hex::encode(h.finalize()),
            Digester::Sha256(h) => hex::encode(h.finalize()),
        }
    }
}

impl Store {
    /// Remember that the content `hash` has the (verified) checksum `c`. Best effort: the
    /// content is committed already, and a digest not remembered is only not listed.
    pub(crate) async fn remember_checksum(&self, hash: &ContentHash, c: &ContentChecksum) {
        let res = async {
            let client = self.inner.pool.get().await?;
            client
                .cexecute(
                    "INSERT INTO content_checksums (content_hash, checksums) VALUES ($1, $2)
                     ON CONFLICT (content_hash) DO UPDATE SET checksums = content_checksums.checksums || ' ' || $2
                     WHERE position(split_part($2, ':', 1) || ':' IN content_checksums.checksums) = 0",
                    &[&&hash.0[..], &c.to_string()],
                )
                .await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "could not remember a content's checksum");
        }
    }

    /// The checksums known for each of `hashes` (`SHA1:<hex> MD5:<hex>`), for those that have any.
    pub async fn checksums(&self, hashes: &[ContentHash]) -> Result<HashMap<ContentHash, String>> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<&[u8]> = hashes.iter().map(|h| &h.0[..]).collect();
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT content_hash, checksums FROM content_checksums WHERE content_hash = ANY($1)",
                &[&keys],
            )
            .await?;
        rows.iter().map(|r| Ok((ContentHash::from_db(r.get(0))?, r.get(1)))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_verifies() {
        // Test vector: SHA1("abc"), MD5("abc") (FIPS 180 / RFC 1321).
        let c = ContentChecksum::parse("sha1:A9993E364706816ABA3E25717850C26C9CD0D89D").unwrap().unwrap();
        assert_eq!(c.to_string(), "SHA1:a9993e364706816aba3e25717850c26c9cd0d89d");
        let mut d = c.digester();
        d.update(b"a");
        d.update(b"bc");
        c.verify(d).unwrap();
        let m = ContentChecksum::parse("MD5:900150983cd24fb0d6963f7d28e17f72").unwrap().unwrap();
        let mut d = m.digester();
        d.update(b"abd");
        assert_eq!(m.verify(d).unwrap_err().kind(), ErrorKind::ChecksumMismatch);
        assert_eq!(ContentChecksum::parse("ADLER32:024d0127").unwrap(), None);
        for bad in ["SHA1", "SHA1:xyz", "MD5:900150983cd24fb0d6963f7d28e17f7", ""] {
            assert_eq!(ContentChecksum::parse(bad).unwrap_err().kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }
}
