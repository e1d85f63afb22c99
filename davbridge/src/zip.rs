//! A zip archive of a folder, written as it is sent: no file is read before the previous one is
//! sent, so memory stays flat whatever the folder's size. Entries are *stored* (photos and
//! videos, what a family zips, do not compress), each followed by a data descriptor carrying
//! its CRC-32 (known only once its bytes are sent); ZIP64 records are written where a size,
//! an offset or the number of entries needs them (APPNOTE 6.3.x, sections 4.3–4.5). Names are
//! UTF-8 (flag bit 11); times are the DOS time in UTC plus the exact Unix time (extra field
//! 0x5455), as Info-ZIP writes it.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncReadExt;

use crate::body::Body;

/// Bytes read from a file at a time.
const CHUNK: usize = 256 << 10;
/// Flags: sizes and CRC in a data descriptor (bit 3), UTF-8 names (bit 11).
const FLAGS: u16 = 0x0808;
/// Version needed to extract: 4.5 (ZIP64).
const VERSION: u16 = 45;
const MAX32: u64 = 0xFFFF_FFFF;

/// One entry: its name in the archive (`a/b.jpg`, or `a/sub/` for a folder) and when it changed.
pub(crate) struct Entry {
    pub name: String,
    pub mtime: store::Timestamp,
    /// The file's bytes, opened when its turn comes; `None` for a folder.
    pub file: Option<Box<dyn FnOnce() -> Opening + Send>>,
}

/// Opens an entry's file.
pub(crate) type Opening = std::pin::Pin<Box<dyn Future<Output = std::io::Result<std::fs::File>> + Send>>;

/// What the central directory needs of an entry already sent.
struct Sent {
    name: String,
    mtime: store::Timestamp,
    is_dir: bool,
    crc: u32,
    size: u64,
    offset: u64,
}

/// The archive of `entries`, in order, as a streamed body. A file that cannot be read ends the
/// stream with an error (the client sees a cut-off download, never a wrong archive).
pub(crate) fn stream(entries: Vec<Entry>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(async move {
        if let Err(e) = write(entries, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    StreamBody::new(stream.map(|r| r.map(Frame::data))).boxed_unsync()
}

type Tx = tokio::sync::mpsc::Sender<std::io::Result<Bytes>>;

async fn send(tx: &Tx, b: Bytes, at: &mut u64) -> std::io::Result<()> {
    *at += b.len() as u64;
    tx.send(Ok(b)).await.map_err(|_| std::io::Error::other("the client went away"))
}

async fn write(entries: Vec<Entry>, tx: &Tx) -> std::io::Result<()> {
    let mut at = 0u64;
    let mut sent = Vec::with_capacity(entries.len());
    for e in entries {
        let offset = at;
        let is_dir = e.file.is_none();
        send(tx, local_header(&e.name, e.mtime), &mut at).await?;
        let (mut crc, mut size) = (crc32fast::Hasher::new(), 0u64);
        if let Some(open) = e.file {
            let mut file = tokio::fs::File::from_std(open().await?);
            loop {
                let mut buf = BytesMut::zeroed(CHUNK);
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                crc.update(&buf);
                size += n as u64;
                send(tx, buf.freeze(), &mut at).await?;
            }
        }
        let crc = crc.finalize();
        send(tx, descriptor(crc, size), &mut at).await?;
        sent.push(Sent { name: e.name, mtime: e.mtime, is_dir, crc, size, offset });
    }
    let cd_start = at;
    for s in &sent {
        send(tx, central_header(s), &mut at).await?;
    }
    send(tx, end(sent.len() as u64, cd_start, at - cd_start, at), &mut at).await
}

fn unix_secs(t: store::Timestamp) -> i64 {
    t.0.div_euclid(1_000_000_000)
}

/// The DOS date and time (UTC; 1980–2107, clamped) of `t`.
fn dos_time(t: store::Timestamp) -> (u16, u16) {
    let (year, month, day, hour, minute, second) =
        store::civil(unix_secs(t).clamp(315_532_800, 4_354_819_199));
    let date = ((year - 1980) as u16) << 9 | (month as u16) << 5 | day as u16;
    let time = (hour as u16) << 11 | (minute as u16) << 5 | (second as u16 / 2);
    (time, date)
}

/// The extended-timestamp extra field (0x5455): the modification time in Unix seconds.
fn put_unix_time(b: &mut BytesMut, t: store::Timestamp) {
    b.put_u16_le(0x5455);
    b.put_u16_le(5);
    b.put_u8(1);
    b.put_u32_le(unix_secs(t).clamp(0, u32::MAX as i64) as u32);
}

fn local_header(name: &str, mtime: store::Timestamp) -> Bytes {
    let (time, date) = dos_time(mtime);
    let mut b = BytesMut::with_capacity(30 + name.len() + 9);
    b.put_u32_le(0x0403_4b50);
    b.put_u16_le(VERSION);
    b.put_u16_le(FLAGS);
    b.put_u16_le(0); // stored
    b.put_u16_le(time);
    b.put_u16_le(date);
    b.put_u32_le(0); // CRC-32 and sizes: in the data descriptor
    b.put_u32_le(0);
    b.put_u32_le(0);
    b.put_u16_le(name.len() as u16);
    b.put_u16_le(9);
    b.put_slice(name.as_bytes());
    put_unix_time(&mut b, mtime);
    b.freeze()
}

/// The data descriptor: 8-byte sizes for a file of 4 GiB or more (ZIP64).
fn descriptor(crc: u32, size: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(24);
    b.put_u32_le(0x0807_4b50);
    b.put_u32_le(crc);
    if size >= MAX32 {
        b.put_u64_le(size);
        b.put_u64_le(size);
    } else {
        b.put_u32_le(size as u32);
        b.put_u32_le(size as u32);
    }
    b.freeze()
}

fn central_header(s: &Sent) -> Bytes {
    let (time, date) = dos_time(s.mtime);
    // ZIP64 extra: the sizes (uncompressed, then compressed) and the offset, each only if its
    // 32-bit field says 0xFFFFFFFF.
    let mut zip64 = BytesMut::new();
    if s.size >= MAX32 {
        zip64.put_u64_le(s.size);
        zip64.put_u64_le(s.size);
    }
    if s.offset >= MAX32 {
        zip64.put_u64_le(s.offset);
    }
    let extra_len = 9 + if zip64.is_empty() { 0 } else { 4 + zip64.len() };
    let mut b = BytesMut::with_capacity(46 + s.name.len() + extra_len);
    b.put_u32_le(0x0201_4b50);
    b.put_u16_le(3 << 8 | VERSION); // made by: Unix
    b.put_u16_le(VERSION);
    b.put_u16_le(FLAGS);
    b.put_u16_le(0);
    b.put_u16_le(time);
    b.put_u16_le(date);
    b.put_u32_le(s.crc);
    b.put_u32_le(s.size.min(MAX32) as u32);
    b.put_u32_le(s.size.min(MAX32) as u32);
    b.put_u16_le(s.name.len() as u16);
    b.put_u16_le(extra_len as u16);
    b.put_u16_le(0); // comment
    b.put_u16_le(0); // disk
    b.put_u16_le(0); // internal attributes
    let (mode, dos) = if s.is_dir { (0o040_755u32, 0x10u32) } else { (0o100_644, 0) };
    b.put_u32_le(mode << 16 | dos);
    b.put_u32_le(s.offset.min(MAX32) as u32);
    b.put_slice(s.name.as_bytes());
    put_unix_time(&mut b, s.mtime);
    if !zip64.is_empty() {
        b.put_u16_le(0x0001);
        b.put_u16_le(zip64.len() as u16);
        b.put_slice(&zip64);
    }
    b.freeze()
}

/// The end records: ZIP64 ones when the count, the directory's size or its offset need them.
fn end(count: u64, cd_start: u64, cd_size: u64, at: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(98);
    let zip64 = count >= 0xFFFF || cd_start >= MAX32 || cd_size >= MAX32;
    if zip64 {
        b.put_u32_le(0x0606_4b50);
        b.put_u64_le(44);
        b.put_u16_le(3 << 8 | VERSION);
        b.put_u16_le(VERSION);
        b.put_u32_le(0);
        b.put_u32_le(0);
        b.put_u64_le(count);
        b.put_u64_le(count);
        b.put_u64_le(cd_size);
        b.put_u64_le(cd_start);
        b.put_u32_le(0x0706_4b50);
        b.put_u32_le(0);
        b.put_u64_le(at); // where the ZIP64 end record starts
        b.put_u32_le(1);
    }
    b.put_u32_le(0x0605_4b50);
    b.put_u16_le(0);
    b.put_u16_le(0);
    b.put_u16_le(count.min(0xFFFF) as u16);
    b.put_u16_le(count.min(0xFFFF) as u16);
    b.put_u32_le(cd_size.min(MAX32) as u32);
    b.put_u32_le(cd_start.min(MAX32) as u32);
    b.put_u16_le(0);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_are_calendar_dates() {
        // 2024-02-29 13:45:58 UTC
        let (time, date) = dos_time(store::Timestamp(1_709_214_358 * 1_000_000_000));
        assert_eq!((date >> 9, (date >> 5) & 15, date & 31), (44, 2, 29));
        assert_eq!((time >> 11, (time >> 5) & 63, (time & 31) * 2), (13, 45, 58));
        // Before 1980: the earliest DOS date.
        assert_eq!(dos_time(store::Timestamp(0)).1, 1 << 5 | 1);
    }
}
