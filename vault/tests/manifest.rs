//! Directory manifests against a server that lies: a manifest re-signed, signed by a stranger,
//! moved to another directory, rolled back, opened under another key, or garbage — and files
//! swapped or rolled back under a manifest — each a typed error. Wycheproof's Ed25519 vectors
//! pass through the same verification.

use ed25519_dalek::{SigningKey, VerifyingKey};
use vault::Error;
use vault::cef::{self, HEADER_LEN, Header};
use vault::keys::{VaultKey, file_keys, manifest_key};
use vault::manifest::{self, Entry, Expect, Kind, Manifest};

const VAULT: [u8; 16] = [9; 16];

fn writer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sample(counter: u64) -> Manifest {
    Manifest {
        vault_id: VAULT,
        dir_id: [1; 16],
        counter,
        epoch: 1,
        entries: vec![
            Entry {
                name: "beach.jpg".into(),
                kind: Kind::File,
                id: [5; 16],
                size: 3,
                mtime: 7,
                commit: [1; 32],
            },
            Entry {
                name: "Trip".into(),
                kind: Kind::Folder,
                id: [6; 16],
                size: 0,
                mtime: 8,
                commit: [0; 32],
            },
        ],
    }
}

#[test]
fn manifests_round_trip_and_every_manipulation_is_caught() {
    let key = manifest_key(&VaultKey([42; 32]), &VAULT);
    let (alice, bob, mallory) = (writer(1), writer(2), writer(3));
    let writers: Vec<VerifyingKey> = vec![alice.verifying_key(), bob.verifying_key()];
    let expect = |min_counter| Expect { vault_id: VAULT, dir_id: [1; 16], min_counter, writers: &writers };
    let sealed = manifest::seal(&key, &alice, &sample(5));
    assert_eq!(manifest::open(&key, &sealed, &expect(5)).unwrap(), sample(5));
    // Deterministic: the same manifest seals to the same bytes.
    assert_eq!(manifest::seal(&key, &alice, &sample(5)), sealed);

    // Every byte flipped: refused, never opened.
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        let got = manifest::open(&key, &bad, &expect(0));
        assert!(got.is_err(), "byte {i} flipped and still opened");
    }
    // Signed by someone who is not a writer (the server's own key).
    let forged = manifest::seal(&key, &mallory, &sample(9));
    assert_eq!(manifest::open(&key, &forged, &expect(0)), Err(Error::Writer));
    // The writer's key swapped for the server's, and re-signed: still not a writer.
    let mut swapped = sealed.clone();
    swapped[53..85].copy_from_slice(mallory.verifying_key().as_bytes());
    assert!(matches!(manifest::open(&key, &swapped, &expect(0)), Err(Error::Writer)));
    // Another directory's manifest handed over for this one.
    let mut other = sample(5);
    other.dir_id = [2; 16];
    let moved = manifest::seal(&key, &bob, &other);
    assert_eq!(manifest::open(&key, &moved, &expect(0)), Err(Error::Identity));
    // Rollback: an older manifest after a newer one was seen.
    let old = manifest::seal(&key, &alice, &sample(4));
    assert_eq!(manifest::open(&key, &old, &expect(5)), Err(Error::Rollback { seen: 5, got: 4 }));
    // Another epoch's (or vault's) key.
    let wrong = manifest_key(&VaultKey([43; 32]), &VAULT);
    assert_eq!(manifest::open(&wrong, &sealed, &expect(0)), Err(Error::Manifest));
    // Truncated and garbage.
    for n in 0..sealed.len() {
        assert!(manifest::open(&key, &sealed[..n], &expect(0)).is_err());
    }
    let mut x = 1u64;
    for n in 0..2000usize {
        let junk: Vec<u8> = (0..n % 400)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 33) as u8
            })
            .collect();
        let _ = manifest::open(&key, &junk, &expect(0));
    }
}

#[test]
fn files_are_checked_against_their_entries() {
    let vk = VaultKey([42; 32]);
    let (ha, hb) = (
        Header { vault_id: VAULT, file_id: [5; 16], epoch: 1, key_gen: 0 },
        Header { vault_id: VAULT, file_id: [7; 16], epoch: 1, key_gen: 0 },
    );
    let v1 = cef::encrypt(&file_keys(&vk, &ha.file_id, 0), &ha, b"first version");
    let v2 = cef::encrypt(&file_keys(&vk, &ha.file_id, 0), &ha, b"second version");
    let b = cef::encrypt(&file_keys(&vk, &hb.file_id, 0), &hb, b"another file");
    let tail = |f: &[u8]| {
        let span = cef::Layout::trailer_span(f.len() as u64, &f[f.len() - 4..]).unwrap() as usize;
        f[f.len() - span..].to_vec()
    };
    let entry = Entry {
        name: "a.txt".into(),
        kind: Kind::File,
        id: ha.file_id,
        size: 14,
        mtime: 0,
        commit: manifest::commit_of(&v2[..HEADER_LEN], &tail(&v2)),
    };
    assert_eq!(manifest::check_file(&entry, &v2[..HEADER_LEN], &tail(&v2)), Ok(()));
    // The older version of the same file: valid ciphertext, but not the one named.
    assert_eq!(manifest::check_file(&entry, &v1[..HEADER_LEN], &tail(&v1)), Err(Error::Stale));
    // Another file in its place.
    assert_eq!(manifest::check_file(&entry, &b[..HEADER_LEN], &tail(&b)), Err(Error::Identity));
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Wycheproof's Ed25519 vectors through `verify_strict`, the check manifests use.
#[test]
fn wycheproof_ed25519() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("vectors/wycheproof_ed25519_test.json")).unwrap();
    let mut ran = 0;
    for g in doc["testGroups"].as_array().unwrap() {
        let pk: [u8; 32] = hex(g["publicKey"]["pk"].as_str().unwrap()).try_into().unwrap();
        let key = VerifyingKey::from_bytes(&pk);
        for t in g["tests"].as_array().unwrap() {
            let sig = hex(t["sig"].as_str().unwrap());
            let ok = match (&key, <[u8; 64]>::try_from(sig.as_slice())) {
                (Ok(k), Ok(s)) => k
                    .verify_strict(
                        &hex(t["msg"].as_str().unwrap()),
                        &ed25519_dalek::Signature::from_bytes(&s),
                    )
                    .is_ok(),
                _ => false,
            };
            assert_eq!(ok, t["result"] == "valid", "tcId {} ({})", t["tcId"], t["comment"]);
            ran += 1;
        }
    }
    assert!(ran >= 100, "{ran} vectors");
}
