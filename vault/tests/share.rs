//! Sharing a vault: the vault key reaches exactly the members it is wrapped to, only as the key
//! the owner committed to; a removed member's keys open nothing written after the rotation;
//! safety numbers expose a substituted key; RFC 9180's Appendix A.1 vectors pass.

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, Serializable};
use vault::Error;
use vault::account::Seed;
use vault::cef::{self, Header};
use vault::keys::{VaultKey, commitment, file_keys};
use vault::share::{self, Member, safety_number};

mod common;
use common::SysRng;

const VAULT: [u8; 16] = [9; 16];

#[test]
fn the_vault_key_reaches_its_members_only_and_rotation_locks_out_the_removed() {
    let (alice, bob, carol) = (Seed([1; 32]), Seed([2; 32]), Seed([3; 32]));
    let v1 = VaultKey([11; 32]);
    let c1 = commitment(&v1);
    let to_bob = share::wrap(&v1, &VAULT, 1, &bob.member(), &mut SysRng).unwrap();
    assert_eq!(share::unwrap(&bob, &to_bob, &VAULT, 1, &c1).unwrap().0, v1.0);
    // Not for carol; not for another epoch or vault.
    assert_eq!(share::unwrap(&carol, &to_bob, &VAULT, 1, &c1).err(), Some(Error::Unlock));
    assert_eq!(share::unwrap(&bob, &to_bob, &VAULT, 2, &c1).err(), Some(Error::Unlock));
    assert_eq!(share::unwrap(&bob, &to_bob, &[8; 16], 1, &c1).err(), Some(Error::Unlock));
    // Any byte changed.
    for i in 0..to_bob.len() {
        let mut bad = to_bob.clone();
        bad[i] ^= 1;
        assert!(share::unwrap(&bob, &bad, &VAULT, 1, &c1).is_err(), "byte {i}");
    }
    // The server wraps a key of its own to bob: not the one the owner committed to.
    let evil = VaultKey([66; 32]);
    let planted = share::wrap(&evil, &VAULT, 1, &bob.member(), &mut SysRng).unwrap();
    assert_eq!(share::unwrap(&bob, &planted, &VAULT, 1, &c1).err(), Some(Error::Unlock));
    // Wrapped to a key the server substituted for bob's: the safety number alice and bob read
    // to each other differs.
    let fake_bob = Seed([99; 32]).member();
    assert_ne!(safety_number(&alice.member(), &bob.member()), safety_number(&alice.member(), &fake_bob));
    assert_eq!(safety_number(&alice.member(), &bob.member()), safety_number(&bob.member(), &alice.member()));
    let n = safety_number(&alice.member(), &bob.member());
    assert!(
        n.split(' ').count() == 12
            && n.split(' ').all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())),
        "{n}"
    );

    // bob is removed: epoch 2's key goes to alice only, and a file written in epoch 2 does not
    // open with anything bob holds.
    let v2 = VaultKey([22; 32]);
    let to_alice = share::wrap(&v2, &VAULT, 2, &alice.member(), &mut SysRng).unwrap();
    assert_eq!(share::unwrap(&alice, &to_alice, &VAULT, 2, &commitment(&v2)).unwrap().0, v2.0);
    assert_eq!(share::unwrap(&bob, &to_alice, &VAULT, 2, &commitment(&v2)).err(), Some(Error::Unlock));
    let h = Header { vault_id: VAULT, file_id: [4; 16], epoch: 2, key_gen: 0 };
    let file = cef::encrypt(&file_keys(&v2, &h.file_id, 0), &h, b"written after bob left");
    let bobs = share::unwrap(&bob, &to_bob, &VAULT, 1, &c1).unwrap();
    assert_eq!(cef::decrypt(&file_keys(&bobs, &h.file_id, 0), &file, Some(&h)), Err(Error::Trailer));
    assert_eq!(
        cef::decrypt(&file_keys(&v2, &h.file_id, 0), &file, Some(&h)).unwrap(),
        b"written after bob left"
    );
    // A member key of low order (the all-zero point) is refused when wrapping to it.
    let zero = Member { x25519: [0; 32], ed25519: [0; 32] };
    assert_eq!(share::wrap(&v2, &VAULT, 2, &zero, &mut SysRng).err(), Some(Error::Member));
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

/// RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode —
/// the recipient's key pair from its input keying material, and the first encryption opened.
#[test]
fn rfc9180_appendix_a1_base_vectors() {
    let ikm_r = hex("6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037");
    let (sk, pk) = X25519HkdfSha256::derive_keypair(&ikm_r);
    assert_eq!(
        pk.to_bytes().to_vec(),
        hex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")
    );
    assert_eq!(
        sk.to_bytes().to_vec(),
        hex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
    );
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&hex(
        "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
    ))
    .unwrap();
    let pt = hpke::single_shot_open::<hpke::aead::AesGcm128, hpke::kdf::HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        &hex("4f6465206f6e2061204772656369616e2055726e"),
        &hex("f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a9 6d8770ac83d07bea87e13c512a"),
        &hex("436f756e742d30"),
    )
    .unwrap();
    assert_eq!(pt, hex("4265617574792069732074727574682c20747275746820626561757479"));
}
