//! Account keys: the seed comes back only with the right passphrase *and* emergency-kit secret,
//! or the recovery key; a blob weakened, moved to another account, or changed is refused.

use vault::Error;
use vault::account::{self, Cost, MIN_MEMORY_KIB, Seed, Unlock};

#[test]
fn a_seed_comes_back_with_both_secrets_or_the_recovery_key_only() {
    let seed = Seed([7; 32]);
    let (kit, recovery) = ([3u8; 16], [5u8; 32]);
    let right = Unlock::Passphrase { passphrase: "Fluffy2019", secret_key: &kit };
    let blob = account::wrap(&seed, b"alice", &right, Cost::default(), &[1; 16]).unwrap();
    assert_eq!(account::unwrap(&blob, b"alice", &right).unwrap().0, seed.0);
    // The same passphrase without the kit's secret (what an admin holding the blob has): no.
    let no_kit = Unlock::Passphrase { passphrase: "Fluffy2019", secret_key: &[0; 16] };
    assert_eq!(account::unwrap(&blob, b"alice", &no_kit).err(), Some(Error::Unlock));
    let wrong = Unlock::Passphrase { passphrase: "Fluffy2020", secret_key: &kit };
    assert_eq!(account::unwrap(&blob, b"alice", &wrong).err(), Some(Error::Unlock));
    // Handed over as another account's.
    assert_eq!(account::unwrap(&blob, b"bob", &right).err(), Some(Error::Unlock));
    // Weakened to make guessing cheap: refused before any work.
    let mut weak = blob.clone();
    weak[10..14].copy_from_slice(&(MIN_MEMORY_KIB / 2).to_be_bytes());
    assert_eq!(account::unwrap(&weak, b"alice", &right).err(), Some(Error::Weak));
    let mut weak = blob.clone();
    weak[14..18].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(account::unwrap(&weak, b"alice", &right).err(), Some(Error::Weak));
    let mut huge = blob.clone();
    huge[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(account::unwrap(&huge, b"alice", &right).err(), Some(Error::Oversized));
    // Any byte of the sealed part or salt changed.
    for i in [22, 30, 38, 50, 70, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[i] ^= 1;
        assert_eq!(account::unwrap(&bad, b"alice", &right).err(), Some(Error::Unlock), "byte {i}");
    }
    // The recovery copy.
    let rec =
        account::wrap(&seed, b"alice", &Unlock::Recovery(&recovery), Cost::default(), &[2; 16]).unwrap();
    assert_eq!(account::unwrap(&rec, b"alice", &Unlock::Recovery(&recovery)).unwrap().0, seed.0);
    assert_eq!(account::unwrap(&rec, b"alice", &Unlock::Recovery(&[6; 32])).err(), Some(Error::Unlock));
    assert_eq!(account::unwrap(&rec, b"alice", &right).err(), Some(Error::Unlock), "not a passphrase blob");
    // The keys a seed gives are stable and distinct.
    assert_eq!(seed.signing_key().to_bytes(), Seed([7; 32]).signing_key().to_bytes());
    assert_ne!(seed.signing_key().to_bytes(), seed.agreement_secret());
}
