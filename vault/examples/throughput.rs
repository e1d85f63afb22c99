//! One core's throughput: CEF v1 encryption and decryption (AES-256-GCM plus the synthetic
//! nonce's HMAC-SHA256) next to raw AES-256-GCM over the same 64 KiB chunks, in MB/s.
//! `cargo run --release -p vault --example throughput [MIB]` (bench/vault.sh runs it).

use std::time::Instant;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::{Aes256Gcm, KeyInit};
use vault::cef::{self, Header};
use vault::keys::{VaultKey, file_keys};

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let plain: Vec<u8> = (0..mib << 20).map(|i| (i * 31 % 251) as u8).collect();
    let header = Header { vault_id: [1; 16], file_id: [2; 16], epoch: 0, key_gen: 0 };
    let keys = file_keys(&VaultKey([3; 32]), &header.file_id, 0);
    let mb = plain.len() as f64 / 1e6;

    let t = Instant::now();
    let sealed = cef::encrypt(&keys, &header, &plain);
    let enc = mb / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = cef::decrypt(&keys, &sealed, Some(&header)).expect("decrypts");
    let dec = mb / t.elapsed().as_secs_f64();
    assert!(back == plain, "round trip");

    let aes = Aes256Gcm::new_from_slice(&[4; 32]).expect("key");
    let mut buf = plain.clone();
    let t = Instant::now();
    for (i, chunk) in buf.chunks_mut(cef::CHUNK).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let _tag =
            aes.encrypt_in_place_detached(GenericArray::from_slice(&nonce), b"", chunk).expect("seals");
    }
    let raw = mb / t.elapsed().as_secs_f64();
    std::hint::black_box(&buf);
    let overhead = (sealed.len() - plain.len()) as f64;
    println!("one core, {mib} MiB in memory:");
    println!("  raw AES-256-GCM (64 KiB chunks)   {raw:9.0} MB/s");
    println!("  CEF v1 encrypt                    {enc:9.0} MB/s  ({:.2}x raw)", enc / raw);
    println!("  CEF v1 decrypt                    {dec:9.0} MB/s  ({:.2}x raw)", dec / raw);
    println!(
        "  size overhead                     {:.4} % ({} bytes on {} bytes)",
        overhead / plain.len() as f64 * 100.0,
        sealed.len() - plain.len(),
        plain.len()
    );
}
