//! rsync signatures and deltas in librsync's format (MD4 signatures, `rs` delta commands), for
//! files of any size in flat memory. `fast_rsync` does the hashing and matching; this crate
//! picks the block size, computes signatures from a stream (a signature is a header followed by
//! one fixed-size entry per block, so it can be built a chunk of blocks at a time), and runs
//! `diff` and `apply` over memory-mapped files instead of buffers.
//!
//! The format is MD4-based and not collision resistant: whoever applies a delta must check the
//! result against a cryptographic hash of the intended target (Cairn sends the blake3).

use std::fs::File;
use std::io::{self, Read, Write};

use fast_rsync::{Signature, SignatureOptions};

/// Bytes of each block's MD4 kept in a signature. Eight bytes make an accidental match
/// vanishingly rare at any file size; the blake3 check catches the rest.
pub const HASH_BYTES: u32 = 8;
/// librsync's magic for MD4 signatures, big-endian.
const SIG_MAGIC: u32 = 0x7273_0136;
const SIG_HEADER: usize = 12;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signature is not an MD4 librsync signature with sane parameters.
    #[error("invalid signature")]
    InvalidSignature,
    /// The delta is malformed, refers outside the base, or produces more than allowed.
    #[error("invalid delta: {0}")]
    InvalidDelta(String),
    /// The delta (for `diff`) or its result (for `apply`) grew past the caller's limit.
    #[error("larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The block size for a file of `len` bytes: about twice its square root (rsync takes the
/// square root but keeps 6 bytes per block; with 12 bytes per block this gives the same
/// signature size), a power of two between 1 KiB and 256 KiB. Larger blocks make smaller
/// signatures; smaller blocks localise edits.
pub fn block_size(len: u64) -> u32 {
    let root = (len as f64).sqrt() as u64 * 2;
    root.clamp(1 << 10, 1 << 18).next_power_of_two().min(1 << 18) as u32
}

/// The signature of everything `reader` yields, expected to be about `len` bytes (only used
/// to pick the block size). Reads in chunks of whole blocks: memory stays flat.
pub fn signature(mut reader: impl Read, len: u64) -> io::Result<Vec<u8>> {
    let options = SignatureOptions { block_size: block_size(len), crypto_hash_size: HASH_BYTES };
    let per_block = 4 + HASH_BYTES as usize;
    let blocks = len.div_ceil(options.block_size as u64) as usize;
    let mut out = Vec::with_capacity(SIG_HEADER + blocks.min(1 << 20) * per_block);
    out.extend_from_slice(&SIG_MAGIC.to_be_bytes());
    out.extend_from_slice(&options.block_size.to_be_bytes());
    out.extend_from_slice(&HASH_BYTES.to_be_bytes());
    let chunk = options.block_size as usize * 64;
    let mut buf = vec![0u8; chunk];
    loop {
        let n = read_full(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        let sig = Signature::calculate(&buf[..n], options);
        out.extend_from_slice(&sig.serialized()[SIG_HEADER..]);
        if n < chunk {
            break;
        }
    }
    Ok(out)
}

/// The block size a signature was made with.
pub fn signature_block_size(signature: &[u8]) -> Result<u32, Error> {
    parse(signature).map(|s| s.1)
}

fn parse(signature: &[u8]) -> Result<(u32, u32, u32), Error> {
    let word =
        |i: usize| -> Option<u32> { Some(u32::from_be_bytes(signature.get(i..i + 4)?.try_into().ok()?)) };
    let (Some(magic), Some(block), Some(hash)) = (word(0), word(4), word(8)) else {
        return Err(Error::InvalidSignature);
    };
    let body = signature.len() - SIG_HEADER;
    if magic != SIG_MAGIC
        || block == 0
        || block > 1 << 24
        || hash == 0
        || hash > 16
        || body % (4 + hash as usize) != 0
    {
        return Err(Error::InvalidSignature);
    }
    Ok((magic, block, hash))
}

/// A delta that turns the base `signature` describes into `data`, written to `out`; fails
/// with [`Error::TooLarge`] as soon as it exceeds `limit` bytes.
pub fn diff(signature: &[u8], data: &[u8], out: impl Write, limit: u64) -> Result<u64, Error> {
    parse(signature)?;
    let sig = Signature::deserialize(signature.to_vec()).map_err(|_| Error::InvalidSignature)?;
    let mut out = Capped { inner: out, written: 0, limit };
    match fast_rsync::diff(&sig.index(), data, &mut out) {
        Ok(()) => Ok(out.written),
        Err(_) if out.written > limit => Err(Error::TooLarge(limit)),
        Err(fast_rsync::DiffError::InvalidSignature) => Err(Error::InvalidSignature),
        Err(fast_rsync::DiffError::Io(e)) => Err(Error::Io(e)),
    }
}

/// [`diff`] with the new content read from a file (memory-mapped).
pub fn diff_file(signature: &[u8], data: &File, out: impl Write, limit: u64) -> Result<u64, Error> {
    let map = Map::new(data)?;
    diff(signature, map.bytes(), out, limit)
}

/// Apply `delta` to `base`, writing the result to `out`; at most `limit` bytes are written.
pub fn apply(base: &[u8], delta: &[u8], out: &mut impl Write, limit: u64) -> Result<(), Error> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    fast_rsync::apply_limited(base, delta, out, limit).map_err(|e| match e {
        fast_rsync::ApplyError::Io(e) => Error::Io(e),
        fast_rsync::ApplyError::OutputLimit { .. } => Error::TooLarge(limit as u64),
        other => Error::InvalidDelta(other.to_string()),
    })
}

/// [`apply`] with the base and the delta read from files (memory-mapped). The base must not be
/// truncated while this runs (Cairn's stored contents never are: a new content is a new file).
pub fn apply_files(base: &File, delta: &File, out: &mut impl Write, limit: u64) -> Result<(), Error> {
    let base = Map::new(base)?;
    let delta = Map::new(delta)?;
    apply(base.bytes(), delta.bytes(), out, limit)
}

/// A read-only map of a whole file (an empty file maps to an empty slice).
pub struct Map(Option<memmap2::Mmap>);

impl Map {
    /// Map `file`.
    pub fn new(file: &File) -> io::Result<Map> {
        if file.metadata()?.len() == 0 {
            return Ok(Map(None));
        }
        // SAFETY: the caller's contract (see `apply_files`) is that the file is not truncated
        // while mapped; a concurrent write in place would only change what we read.
        let map = unsafe { memmap2::Mmap::map(file)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Map(Some(map)))
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

struct Capped<W> {
    inner: W,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            return Err(io::Error::other("delta too large"));
        }
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(base: &[u8], target: &[u8]) -> (Vec<u8>, usize) {
        let sig = signature(base, base.len() as u64).unwrap();
        let mut delta = Vec::new();
        diff(&sig, target, &mut delta, u64::MAX).unwrap();
        let mut out = Vec::new();
        apply(base, &delta, &mut out, target.len() as u64).unwrap();
        (out, delta.len())
    }

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn streamed_signature_equals_one_shot() {
        let data = noise(7, 3 * 64 * 1024 * 5 + 123);
        let options =
            SignatureOptions { block_size: block_size(data.len() as u64), crypto_hash_size: HASH_BYTES };
        let one = Signature::calculate(&data, options);
        assert_eq!(signature(&data[..], data.len() as u64).unwrap(), one.serialized());
    }

    #[test]
    fn shifted_content_costs_little() {
        let base = noise(1, 4 << 20);
        let mut target = b"a hundred bytes inserted at the front".repeat(3);
        target.extend_from_slice(&base);
        let (out, delta) = round_trip(&base, &target);
        assert_eq!(out, target);
        assert!(delta < 8 * 1024, "delta {delta} bytes for a 111-byte insert");
    }

    #[test]
    fn limits_and_garbage_are_errors() {
        let base = noise(2, 100_000);
        let target = noise(3, 100_000);
        let sig = signature(&base[..], base.len() as u64).unwrap();
        assert!(matches!(diff(&sig, &target, Vec::new(), 50_000), Err(Error::TooLarge(50_000))));
        assert!(matches!(diff(b"nonsense", &target, Vec::new(), u64::MAX), Err(Error::InvalidSignature)));
        let mut delta = Vec::new();
        diff(&sig, &target, &mut delta, u64::MAX).unwrap();
        assert!(matches!(apply(&base, &delta, &mut Vec::new(), 99_999), Err(Error::TooLarge(99_999))));
        assert!(matches!(
            apply(&base, &delta[..delta.len() / 2], &mut Vec::new(), u64::MAX),
            Err(Error::InvalidDelta(_))
        ));
        assert!(
            apply(
                &base,
                b"\x72\x73\x02\x36\x45\xff\xff\xff\xff\xff\xff\xff\xff\x00\x01",
                &mut Vec::new(),
                u64::MAX
            )
            .is_err()
        );
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Replace { at: usize, len: usize, seed: u64 },
        Insert { at: usize, len: usize, seed: u64 },
        Delete { at: usize, len: usize },
        Append { len: usize, seed: u64 },
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), 0..5000usize, any::<u64>()).prop_map(|(at, len, seed)| Edit::Replace {
                at,
                len,
                seed
            }),
            (any::<usize>(), 0..5000usize, any::<u64>()).prop_map(|(at, len, seed)| Edit::Insert {
                at,
                len,
                seed
            }),
            (any::<usize>(), 0..5000usize).prop_map(|(at, len)| Edit::Delete { at, len }),
            (0..5000usize, any::<u64>()).prop_map(|(len, seed)| Edit::Append { len, seed }),
        ]
    }

    fn edited(base: &[u8], edits: &[Edit], bs: usize) -> Vec<u8> {
        let mut t = base.to_vec();
        for e in edits {
            // Half the edits land exactly on a block boundary.
            let at = |at: usize, t: &Vec<u8>| {
                let at = at % (t.len() + 1);
                if at % 2 == 0 { (at / bs * bs).min(t.len()) } else { at }
            };
            match *e {
                Edit::Replace { at: a, len, seed } => {
                    let a = at(a, &t);
                    let end = (a + len).min(t.len());
                    t.splice(a..end, noise(seed, end - a));
                }
                Edit::Insert { at: a, len, seed } => {
                    let a = at(a, &t);
                    t.splice(a..a, noise(seed, len));
                }
                Edit::Delete { at: a, len } => {
                    let a = at(a, &t);
                    let end = (a + len).min(t.len());
                    t.drain(a..end);
                }
                Edit::Append { len, seed } => t.extend(noise(seed, len)),
            }
        }
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn apply_of_diff_is_the_target(len in 0..300_000usize, seed in any::<u64>(), edits in prop::collection::vec(edit(), 0..6)) {
            let base = noise(seed, len);
            let bs = block_size(len as u64) as usize;
            let target = edited(&base, &edits, bs);
            let (out, _) = round_trip(&base, &target);
            prop_assert_eq!(out, target);
        }

        #[test]
        fn unrelated_pairs_round_trip(a in prop::collection::vec(any::<u8>(), 0..5000), b in prop::collection::vec(any::<u8>(), 0..5000)) {
            let (out, _) = round_trip(&a, &b);
            prop_assert_eq!(out, b);
        }
    }
}
