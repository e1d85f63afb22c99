//! Model-based test of `store`: random sequences of put, mkdir, delete, move, copy, version
//! restore, trash restore, purge and restart on a small namespace (so operations collide),
//! checked after every step against an in-memory model of the tree, and with `fsck` (which
//! also recomputes the quota accounting) clean along the way.

use std::collections::BTreeMap;

use store::{Actor, DataDirLock, DbTarget, Origin, Store, StoreConfig, TrashId, User, UserName, VPath};
use tests::{Env, Rng, b3};

/// What the model holds at a path: a folder, or a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
}

type Tree = BTreeMap<String, Entry>;

const PATHS: &[&str] = &["a", "b", "a/x", "a/y", "b/x", "a/x/deep", "c"];

fn parent(p: &str) -> Option<&str> {
    p.rfind('/').map(|i| &p[..i])
}

fn parent_ok(tree: &Tree, p: &str) -> bool {
    match parent(p) {
        None => true,
        Some(par) => tree.get(par) == Some(&Entry::Dir),
    }
}

fn below<'a>(tree: &'a Tree, p: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
    tree.iter().filter(move |(k, _)| *k == p || k.starts_with(&format!("{p}/")))
}

fn take_subtree(tree: &mut Tree, p: &str) -> Tree {
    let keys: Vec<String> = below(tree, p).map(|(k, _)| k.clone()).collect();
    keys.into_iter().map(|k| (k.clone(), tree.remove(&k).unwrap())).collect()
}

fn rebase(sub: Tree, from: &str, to: &str) -> Tree {
    sub.into_iter().map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v)).collect()
}

async fn open(env: &Env) -> (Store, DataDirLock) {
    // Other test threads fork children; until a child execs it shares our lock file's
    // descriptor (close-on-exec notwithstanding), so a just-released lock can look held for a
    // moment. A real restart has no such siblings.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lock = loop {
        match DataDirLock::try_acquire(&env.data_dir, "model test").unwrap() {
            Ok(lock) => break lock,
            Err(holder) => {
                assert!(std::time::Instant::now() < deadline, "data directory still held by {holder}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let store =
        Store::open(StoreConfig::new(&env.data_dir), &DbTarget::Url(env.conninfo.clone())).await.unwrap();
    store.migrate().await.unwrap();
    store.recover(&lock).await.unwrap();
    (store, lock)
}

/// The store's live tree, read back in full.
async fn actual(store: &Store, user: &User) -> Tree {
    let mut out = Tree::new();
    for n in store.list_tree(user, &VPath::root()).await.unwrap() {
        let key = n.path.as_str().to_owned();
        if n.is_dir {
            out.insert(key, Entry::Dir);
        } else {
            let (_, mut f) = store.open_file(user, &n.path).await.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).unwrap();
            assert_eq!(n.content_hash.unwrap().to_hex(), b3(&data), "hash of {key}");
            out.insert(key, Entry::File(data));
        }
    }
    out
}

async fn run(seed: u64, steps: usize) {
    let env = Env::new();
    let (mut store, mut lock) = open(&env).await;
    let name = UserName::parse("model").unwrap();
    let user = store
        .create_user(&Actor::system(), &name, "correct horse battery", Default::default())
        .await
        .unwrap();
    let actor = Actor::user(Origin::Ctl, &user, None);
    let mut rng = Rng(seed | 1);
    let mut tree = Tree::new();
    // Trash items the model knows: id -> (original path, subtree as it was).
    let mut trash: BTreeMap<i64, (String, Tree)> = BTreeMap::new();
    let p = |s: &str| VPath::parse(s).unwrap();
    // (successes, refusals) per operation, to show the run exercised every path.
    let mut seen: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let mut count = |op: &'static str, ok: bool| {
        let e = seen.entry(op).or_default();
        if ok { e.0 += 1 } else { e.1 += 1 }
    };

    for step in 0..steps {
        let a = rng.pick(PATHS).to_string();
        let b = rng.pick(PATHS).to_string();
        let overwrite = rng.next_u64() % 2 == 0;
        // 0-2 put, 3-5 mkdir, 6 delete, 7-8 move, 9-10 copy, 11 version restore,
        // 12-13 trash restore or purge, 14 restart.
        let op = rng.next_u64() % 15;
        let desc = format!("seed {seed} step {step}: op {op} {a} {b} overwrite={overwrite}");
        // Returns Ok(()) when the store agreed with the model about success.
        match op {
            0..=2 => {
                let data = format!("{seed}-{step}-{}", rng.next_u64() % 1000)
                    .repeat((rng.next_u64() % 50) as usize + 1)
                    .into_bytes();
                let ok = parent_ok(&tree, &a) && tree.get(&a) != Some(&Entry::Dir);
                let res = store
                    .write(&actor, &user, &p(&a), std::io::Cursor::new(data.clone()), Default::default())
                    .await;
                assert_eq!(res.is_ok(), ok, "{desc}: put -> {res:?}");
                count("put", ok);
                if ok {
                    tree.insert(a, Entry::File(data));
                }
            }
            3..=5 => {
                let ok = parent_ok(&tree, &a) && !tree.contains_key(&a);
                let res = store.mkdir(&actor, &user, &p(&a)).await;
                assert_eq!(res.is_ok(), ok, "{desc}: mkdir -> {res:?}");
                count("mkdir", ok);
                if ok {
                    tree.insert(a, Entry::Dir);
                }
            }
            6 => {
                let ok = tree.contains_key(&a);
                let res = store.delete(&actor, &user, &p(&a), None).await;
                assert_eq!(res.is_ok(), ok, "{desc}: delete -> {res:?}");
                count("delete", ok);
                if let Ok(tid) = res {
                    let sub = take_subtree(&mut tree, &a);
                    trash.insert(tid.0, (a, sub));
                }
            }
            7..=10 => {
                let is_move = op <= 8;
                let related = a == b || b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/"));
                let ok = tree.contains_key(&a)
                    && !related
                    && parent_ok(&tree, &b)
                    && (overwrite || !tree.contains_key(&b));
                let before: Vec<i64> =
                    store.trash_list(&user).await.unwrap().iter().map(|t| t.id.0).collect();
                let res = if is_move {
                    store.rename(&actor, &user, &p(&a), &p(&b), store::Replace::overwrite(overwrite)).await
                } else {
                    store.copy(&actor, &user, &p(&a), &p(&b), store::Replace::overwrite(overwrite)).await
                };
                assert_eq!(res.is_ok(), ok, "{desc}: {} -> {res:?}", if is_move { "move" } else { "copy" });
                count(if is_move { "move" } else { "copy" }, ok);
                if ok {
                    let src_is_file = matches!(tree.get(&a), Some(Entry::File(_)));
                    let dst_is_file = matches!(tree.get(&b), Some(Entry::File(_)));
                    if tree.contains_key(&b) && !(!is_move && src_is_file && dst_is_file) {
                        // The replaced target went to the trash: learn its id.
                        let replaced = take_subtree(&mut tree, &b);
                        let items = store.trash_list(&user).await.unwrap();
                        let new = items.iter().find(|t| !before.contains(&t.id.0)).expect("a new trash item");
                        trash.insert(new.id.0, (b.clone(), replaced));
                    }
                    let sub: Tree = below(&tree, &a).map(|(k, v)| (k.clone(), v.clone())).collect();
                    if is_move {
                        take_subtree(&mut tree, &a);
                    }
                    tree.extend(rebase(sub, &a, &b));
                }
            }
            11 => {
                // Restore a random earlier version of one of the files.
                let files: Vec<String> = tree
                    .iter()
                    .filter(|(_, e)| matches!(e, Entry::File(_)))
                    .map(|(k, _)| k.clone())
                    .collect();
                if !files.is_empty() {
                    let a = rng.pick(&files).clone();
                    let versions = store.versions(&user, &p(&a)).await.unwrap();
                    if !versions.is_empty() {
                        let v = rng.pick(&versions).clone();
                        let (_, mut f) = store.open_version(&user, &p(&a), v.id).await.unwrap();
                        let mut old = Vec::new();
                        std::io::Read::read_to_end(&mut f, &mut old).unwrap();
                        assert_eq!(b3(&old), v.content_hash.to_hex(), "{desc}: version blob");
                        store.restore_version(&actor, &user, &p(&a), v.id).await.unwrap();
                        count("version restore", true);
                        tree.insert(a, Entry::File(old));
                    }
                }
            }
            12 | 13 => {
                let ids: Vec<i64> = trash.keys().copied().collect();
                if ids.is_empty() {
                    continue;
                }
                let id = *rng.pick(&ids);
                // Mostly restores; every fourth time a purge.
                if op == 12 || rng.next_u64() % 4 != 0 {
                    let (orig, _) = &trash[&id];
                    // Refused when the path is taken or any ancestor is now a file.
                    let mut blocked = false;
                    let mut anc = orig.as_str();
                    while let Some(par) = parent(anc) {
                        blocked |= matches!(tree.get(par), Some(Entry::File(_)));
                        anc = par;
                    }
                    let ok = !tree.contains_key(orig) && !blocked;
                    let res = store.trash_restore(&actor, &user, TrashId(id), None).await;
                    if ok {
                        // Missing parents come back as folders.
                        let (orig, sub) = trash.remove(&id).unwrap();
                        let mut anc = orig.as_str();
                        while let Some(par) = parent(anc) {
                            if let Some(Entry::File(_)) = tree.get(par) {
                                break;
                            }
                            tree.insert(par.to_owned(), Entry::Dir);
                            anc = par;
                        }
                        assert!(res.is_ok(), "{desc}: trash restore -> {res:?}");
                        count("trash restore", true);
                        tree.extend(sub);
                    } else {
                        assert!(
                            res.is_err(),
                            "{desc}: trash restore onto an occupied or blocked path succeeded"
                        );
                        count("trash restore", false);
                    }
                } else {
                    store.trash_purge(&actor, &user, Some(TrashId(id))).await.unwrap();
                    count("purge", true);
                    trash.remove(&id);
                }
            }
            _ => {
                // Restart: drop everything, reopen, recover.
                drop(store);
                drop(lock);
                (store, lock) = open(&env).await;
                count("restart", true);
            }
        }
        assert_eq!(actual(&store, &user).await, tree, "{desc}: tree differs from the model");
        if step % 25 == 24 {
            let report = store.fsck(None, true).await.unwrap();
            assert!(report.problems.is_empty(), "{desc}: fsck {:?}", report.problems);
        }
        // Quota pruning may purge trash items on its own; none is configured here, so the
        // model's trash must match the store's.
        let listed: Vec<i64> = store.trash_list(&user).await.unwrap().iter().map(|t| t.id.0).collect();
        let mut known: Vec<i64> = trash.keys().copied().collect();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        known.sort();
        assert_eq!(listed_sorted, known, "{desc}: trash differs from the model");
    }
    let report = store.fsck(None, true).await.unwrap();
    assert!(report.problems.is_empty(), "seed {seed}: fsck {:?}", report.problems);
    // Every operation succeeded several times, and the ones that can be refused were refused
    // sometimes too: the model's predictions were tested both ways.
    for op in
        ["put", "mkdir", "delete", "move", "copy", "version restore", "trash restore", "purge", "restart"]
    {
        let (ok, _) = seen.get(op).copied().unwrap_or_default();
        assert!(ok >= 3, "seed {seed}: {op} succeeded only {ok} times: {seen:?}");
    }
    for op in ["put", "mkdir", "delete", "move", "copy"] {
        assert!(seen[op].1 >= 1, "seed {seed}: {op} was never refused: {seen:?}");
    }
    eprintln!("seed {seed}: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_match_the_model() {
    // CAIRN_MODEL_SEEDS=4,5,6 explores other sequences; the suite runs these three.
    let seeds: Vec<u64> = match std::env::var("CAIRN_MODEL_SEEDS") {
        Ok(list) => list.split(',').map(|s| s.trim().parse().expect("seeds are numbers")).collect(),
        Err(_) => vec![1, 0x5eed, 0xc0ffee],
    };
    for seed in seeds {
        run(seed, 600).await;
    }
}
