//! A 4 GiB PUT and GET round trip with the server's memory flat (peak RSS under 100 MiB).

use std::io::{Read, Write};
use std::net::TcpStream;

use tests::{alice, pattern, peak_rss, record_figure};

const SIZE: u64 = 4 << 30;

#[test]
fn four_gib_round_trip_in_flat_memory() {
    let (env, daemon, a) = alice();
    let auth = a[0].1;
    let block = pattern(1 << 20, 42);

    // PUT, streamed from a repeating 1 MiB block with a counter so no two MiB are equal.
    let t = std::time::Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", env.port)).unwrap();
    write!(
        s,
        "PUT /dav/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut chunk = block.clone();
    for i in 0..(SIZE >> 20) {
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        hasher.update(&chunk);
        s.write_all(&chunk).unwrap();
    }
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let put_secs = t.elapsed().as_secs_f64();
    let sent = hasher.finalize();

    // GET, hashed as it streams in.
    let t = std::time::Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", env.port)).unwrap();
    write!(s, "GET /dav/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut hasher = blake3::Hasher::new();
    let mut body_len = 0u64;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        if !head.ends_with(b"\r\n\r\n") {
            let mut i = 0;
            while i < data.len() && !head.ends_with(b"\r\n\r\n") {
                head.push(data[i]);
                i += 1;
            }
            data = &data[i..];
        }
        body_len += data.len() as u64;
        hasher.update(data);
    }
    let get_secs = t.elapsed().as_secs_f64();
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    assert_eq!(body_len, SIZE);
    assert_eq!(hasher.finalize(), sent, "the bytes came back changed");

    let rss = peak_rss(daemon.child.id());
    assert!(rss < 100 << 20, "cairnd peak RSS {} MiB", rss >> 20);
    record_figure(&format!(
        "4 GiB WebDAV round trip (debug build, loopback, fsync included): PUT {:.0} MB/s, GET {:.0} MB/s, cairnd peak RSS {} MiB",
        SIZE as f64 / put_secs / 1e6,
        SIZE as f64 / get_secs / 1e6,
        rss >> 20
    ));
    // Keep the disk free for the rest of the suite.
    std::fs::remove_file(env.user_dir("alice").join("big.bin")).unwrap();
}
