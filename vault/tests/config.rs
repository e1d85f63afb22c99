//! The vault config: members and keys as the owner signed them; a server that adds a member,
//! changes a role, rolls the config back or signs one itself is caught; removing a member and
//! rotating leaves them no key to what comes after.

use vault::Error;
use vault::account::Seed;
use vault::config::{self, Config, Epoch, Role};
use vault::keys::{VaultKey, commitment};
use vault::share;

mod common;
use common::SysRng;

const VAULT: [u8; 16] = [9; 16];

fn epoch(n: u32, key: &VaultKey, to: &[(u16, &Seed)]) -> Epoch {
    let wrapped = to
        .iter()
        .map(|(i, s)| (*i, share::wrap(key, &VAULT, n, &s.member(), &mut SysRng).unwrap()))
        .collect();
    Epoch { epoch: n, commitment: commitment(key), wrapped }
}

#[test]
fn the_owner_signed_config_decides_members_and_keys() {
    let (alice, bob, carol) = (Seed([1; 32]), Seed([2; 32]), Seed([3; 32]));
    let owner = alice.signing_key();
    let v1 = VaultKey([11; 32]);
    let members =
        vec![(Role::Writer, alice.member()), (Role::Writer, bob.member()), (Role::Reader, carol.member())];
    let c1 = Config {
        vault_id: VAULT,
        counter: 1,
        owner: owner.verifying_key().to_bytes(),
        epochs: vec![epoch(1, &v1, &[(0, &alice), (1, &bob), (2, &carol)])],
        members,
    };
    let sealed = config::seal(&owner, &c1);
    let pinned = owner.verifying_key().to_bytes();
    let opened = config::open(&sealed, &VAULT, &pinned, 1).unwrap();
    assert_eq!(opened, c1);
    for who in [&alice, &bob, &carol] {
        assert_eq!(opened.key_for(who, 1).unwrap().0, v1.0);
    }
    assert_eq!(opened.writers().len(), 3, "the owner and two writers (alice is both)");
    assert!(
        !opened.writers().iter().any(|k| k.to_bytes() == carol.member().ed25519),
        "a reader signs nothing"
    );
    assert_eq!(opened.key_for(&Seed([4; 32]), 1).err(), Some(Error::Unlock), "not a member");

    // Every byte flipped.
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 1;
        assert!(config::open(&bad, &VAULT, &pinned, 0).is_err(), "byte {i}");
    }
    // The server adds itself as a member and signs with its own key.
    let mallory = Seed([66; 32]);
    let mut forged = c1.clone();
    forged.members.push((Role::Writer, mallory.member()));
    forged.owner = mallory.signing_key().verifying_key().to_bytes();
    let forged = config::seal(&mallory.signing_key(), &forged);
    assert_eq!(config::open(&forged, &VAULT, &pinned, 0).err(), Some(Error::Writer));
    // Another vault's config; a rollback.
    assert_eq!(config::open(&sealed, &[8; 16], &pinned, 0).err(), Some(Error::Identity));
    assert_eq!(config::open(&sealed, &VAULT, &pinned, 2).err(), Some(Error::Rollback { seen: 2, got: 1 }));

    // bob leaves: counter 2, epoch 2 wrapped to alice and carol only.
    let v2 = VaultKey([22; 32]);
    let mut c2 = c1.clone();
    c2.counter = 2;
    c2.members.remove(1);
    // Wraps name members by their place in the list: bob's goes, carol's moves up.
    c2.epochs[0].wrapped = c2.epochs[0]
        .wrapped
        .iter()
        .filter(|(i, _)| *i != 1)
        .map(|(i, w)| (if *i > 1 { i - 1 } else { *i }, w.clone()))
        .collect();
    c2.epochs.push(epoch(2, &v2, &[(0, &alice), (1, &carol)]));
    let c2 = config::open(&config::seal(&owner, &c2), &VAULT, &pinned, 2).unwrap();
    assert_eq!(c2.key_for(&alice, 2).unwrap().0, v2.0);
    assert_eq!(c2.key_for(&carol, 2).unwrap().0, v2.0);
    assert_eq!(c2.key_for(&bob, 2).err(), Some(Error::Unlock));
    assert!(
        !c2.writers().iter().any(|k| k.to_bytes() == bob.member().ed25519),
        "bob signs no more manifests"
    );
}
