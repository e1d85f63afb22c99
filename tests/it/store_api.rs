//! `store` called in-process against real PostgreSQL: time-driven retention (a fixed clock, no
//! sleeps), concurrent writers, and the change journal.

use store::{
    Actor, Clock, DbTarget, Origin, Store, StoreConfig, Timestamp, User, UserName, VPath, WriteOptions,
};
use tests::{Env, pattern};

const MIN: i64 = 60 * 1_000_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

async fn open(env: &Env, clock: Clock) -> (Store, User, Actor) {
    let mut cfg = StoreConfig::new(&env.data_dir);
    cfg.clock = clock;
    cfg.pool_size = 16;
    let store = Store::open(cfg, &DbTarget::Url(env.conninfo.clone())).await.unwrap();
    store.migrate().await.unwrap();
    let name = UserName::parse("alice").unwrap();
    let user = store
        .create_user(&Actor::system(), &name, "correct horse battery", Default::default())
        .await
        .unwrap();
    let actor = Actor::user(Origin::Ctl, &user, None);
    (store, user, actor)
}

async fn write(store: &Store, actor: &Actor, user: &User, path: &str, data: Vec<u8>) -> store::WriteOutcome {
    let path = VPath::parse(path).unwrap();
    store.write(actor, user, &path, std::io::Cursor::new(data), WriteOptions::default()).await.unwrap()
}

#[tokio::test]
async fn retention_thins_versions_as_time_passes() {
    let env = Env::new();
    let start = Timestamp(20_000 * DAY); // midnight, so buckets align with the arithmetic below
    let clock = Clock::fixed(start);
    let (store, user, actor) = open(&env, clock.clone()).await;
    // A write every 20 minutes for two days.
    let n = 2 * 24 * 3;
    for i in 0..=n {
        clock.set(Timestamp(start.0 + i * 20 * MIN));
        write(&store, &actor, &user, "/log.txt", format!("entry {i}").into_bytes()).await;
    }
    let now = clock.now();
    let versions = store.versions(&user, &VPath::parse("/log.txt").unwrap()).await.unwrap();
    let recent = versions.iter().filter(|v| now.0 - v.created_at.0 < DAY).count();
    let older: Vec<i64> =
        versions.iter().filter(|v| now.0 - v.created_at.0 >= DAY).map(|v| v.created_at.0 / HOUR).collect();
    // Everything from the last day stays (3 per hour); before that, one per hour.
    assert_eq!(recent, 3 * 24);
    let mut buckets = older.clone();
    buckets.dedup();
    assert_eq!(buckets.len(), older.len(), "one version per hour beyond a day");
    // Those replaced from 00:20 on day one up to 00:00 on day two: 25 hourly buckets.
    assert_eq!(older.len(), 25);

    // Forty days later, one more write: the old ones thin to one per week.
    clock.set(Timestamp(now.0 + 40 * DAY));
    write(&store, &actor, &user, "/log.txt", b"much later".to_vec()).await;
    let versions = store.versions(&user, &VPath::parse("/log.txt").unwrap()).await.unwrap();
    assert!(versions.len() <= 3, "{} versions left", versions.len());
    assert!(store.fsck(None, true).await.unwrap().problems.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_everything_consistent() {
    let env = Env::new();
    let (store, user, actor) = open(&env, Clock::system()).await;
    store.mkdir(&actor, &user, &VPath::parse("/d").unwrap()).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let (store, user, actor) = (store.clone(), user.clone(), actor.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10u64 {
                // Four shared paths (contended) and one private per task.
                let shared = format!("/d/shared{}.bin", (t + i) % 4);
                write(&store, &actor, &user, &shared, pattern(10_000 + i as usize, t * 100 + i)).await;
                let own = format!("/d/own{t}.bin");
                write(&store, &actor, &user, &own, pattern(5_000, t)).await;
            }
            let from = VPath::parse(&format!("/d/own{t}.bin")).unwrap();
            let to = VPath::parse(&format!("/moved{t}.bin")).unwrap();
            store.rename(&actor, &user, &from, &to, store::Replace::Nothing).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = store.fsck(None, true).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // The journal is gap-free and ordered: 1 mkdir + 16 * (10 + 10) writes + 16 moves.
    let changes = store.changes(&user, 0, 10_000).await.unwrap();
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=(1 + 16 * 20 + 16) as i64).collect::<Vec<_>>());
    assert_eq!(store.journal_cursor(&user).await.unwrap(), *seqs.last().unwrap());
    let usage = store.usage(&user).await.unwrap();
    assert_eq!(usage.used, usage.files + usage.versions + usage.trash);
}

/// A batch closes all its users' changes in one statement (one per round when a user writes
/// through two front ends at once). Six users, each writing through WebDAV and REST at once, one
/// of them over its quota so that its close prunes a version: every write lands with the
/// journal entry and audit record of its own user and front end, gap-free per user, and usage
/// stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_batch_closes_many_users_and_front_ends() {
    use std::io::Read;
    let env = Env::new();
    let (store, first, _) = open(&env, Clock::system()).await;
    let p = |s: &str| VPath::parse(s).unwrap();
    let mut users = vec![first];
    for i in 1..6 {
        let name = UserName::parse(&format!("user{i}")).unwrap();
        users.push(
            store
                .create_user(&Actor::system(), &name, "a long password here", Default::default())
                .await
                .unwrap(),
        );
    }
    for u in &users {
        store.mkdir(&Actor::user(Origin::Ctl, u, None), u, &p("/d")).await.unwrap();
    }
    // The first user: one file with one version (60,000 bytes used), and a quota of 100,000, so
    // that a 50,000-byte write in the batch prunes the version.
    let ctl = Actor::user(Origin::Ctl, &users[0], None);
    write(&store, &ctl, &users[0], "/d/q", pattern(30_000, 1)).await;
    write(&store, &ctl, &users[0], "/d/q", pattern(30_000, 2)).await;
    store.set_quota(&Actor::system(), &users[0].name, Some(100_000)).await.unwrap();
    users[0] = store.user(&users[0].name).await.unwrap();
    let cursors: Vec<i64> = {
        let mut c = Vec::new();
        for u in &users {
            c.push(store.journal_cursor(u).await.unwrap());
        }
        c
    };

    // (user, origin, path, bytes), written all at once, in rounds.
    let mut written: Vec<(usize, Origin, String, Vec<u8>)> = Vec::new();
    for round in 0..5 {
        let mut jobs = Vec::new();
        for (u, _) in users.iter().enumerate() {
            for (k, origin) in [Origin::Dav, Origin::Rest, Origin::Dav, Origin::Rest].into_iter().enumerate()
            {
                let size = if u == 0 && round == 0 && k == 0 { 50_000 } else { 500 + 11 * k };
                jobs.push((
                    u,
                    origin,
                    format!("/d/r{round}-{k}"),
                    pattern(size, (round * 100 + u * 10 + k) as u64),
                ));
            }
        }
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(jobs.len()));
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|(u, origin, path, data)| {
                let (store, user, start) = (store.clone(), users[u].clone(), start.clone());
                tokio::spawn(async move {
                    let actor = Actor::user(origin, &user, None);
                    start.wait().await;
                    let res = store
                        .write(
                            &actor,
                            &user,
                            &VPath::parse(&path).unwrap(),
                            std::io::Cursor::new(data.clone()),
                            WriteOptions::default(),
                        )
                        .await;
                    (u, origin, path, data, res)
                })
            })
            .collect();
        for t in tasks {
            let (u, origin, path, data, res) = t.await.unwrap();
            res.unwrap_or_else(|e| panic!("user {u} {path}: {e}"));
            written.push((u, origin, path, data));
        }
    }

    for (u, _, path, data) in &written {
        let (_, mut f) = store.open_file(&users[*u], &p(path)).await.unwrap();
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        assert!(got == *data, "user {u} {path}: content");
    }
    // Per user: gap-free, one entry per write, each naming the front end it came through.
    let mut instants: Vec<(Timestamp, usize, Option<Origin>)> = Vec::new();
    for (u, user) in users.iter().enumerate() {
        let changes = store.changes(user, cursors[u], 1_000).await.unwrap();
        let mine: Vec<_> = written.iter().filter(|w| w.0 == u).collect();
        let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            ((cursors[u] + 1)..=(cursors[u] + mine.len() as i64)).collect::<Vec<_>>(),
            "user {u}"
        );
        for c in &changes {
            let w =
                mine.iter().find(|w| w.2 == c.path.to_string()).unwrap_or_else(|| panic!("user {u}: {c:?}"));
            assert_eq!(c.origin, Some(w.1), "user {u} {}", w.2);
            assert_eq!(c.kind, "create");
            instants.push((c.at, u, c.origin));
        }
        let usage = store.usage(user).await.unwrap();
        assert_eq!(usage.used, usage.files + usage.versions + usage.trash, "user {u}");
    }
    // The quota held: the first user's version went to make room.
    let usage = store.usage(&users[0]).await.unwrap();
    assert!(usage.used <= 100_000, "{usage:?}");
    assert!(store.versions(&users[0], &p("/d/q")).await.unwrap().is_empty());
    // Each write has its audit record, naming its user and front end.
    let audit = store.audit_tail(10_000).await.unwrap();
    for (u, origin, path, _) in &written {
        let n = audit
            .iter()
            .filter(|a| {
                a.action == "file.write"
                    && a.actor == users[*u].name.as_str()
                    && a.origin == origin.as_str()
                    && a.path.as_deref() == Some(path.as_str())
            })
            .count();
        assert_eq!(n, 1, "audit of user {u} {path}");
    }
    // Batches formed: some instant holds writes of two users, and some holds one user's writes
    // through both front ends (two rounds of the closing statement in one transaction).
    let together =
        |a: &(Timestamp, usize, Option<Origin>), b: &(Timestamp, usize, Option<Origin>)| a.0 == b.0;
    let two_users = instants.iter().any(|a| instants.iter().any(|b| together(a, b) && a.1 != b.1));
    assert!(two_users, "no batch held two users");
    let two_front_ends =
        instants.iter().any(|a| instants.iter().any(|b| together(a, b) && a.1 == b.1 && a.2 != b.2));
    assert!(two_front_ends, "no batch held one user's writes from two front ends");
    let report = store.fsck(None, true).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Concurrent writes are committed in batches (group commit). Whatever a batch holds — two
/// users, two actors, writes refused at commit (an etag that changed, a missing folder),
/// several writes creating the same folder, writes from a second process on the same paths —
/// each write gets the answer it would get alone, and the tree, journal and usage stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_writes_each_get_their_own_answer() {
    use std::io::Read;
    use store::ErrorKind;
    let env = Env::new();
    let (store, alice, alice_actor) = open(&env, Clock::system()).await;
    let bob = store
        .create_user(
            &Actor::system(),
            &UserName::parse("bob").unwrap(),
            "another long password",
            Default::default(),
        )
        .await
        .unwrap();
    let bob_actor = Actor::user(Origin::Dav, &bob, Some("192.0.2.7".to_owned()));
    // A second process on the same database and data directory (cairnctl beside cairnd).
    let mut cfg = StoreConfig::new(&env.data_dir);
    cfg.pool_size = 8;
    let other = Store::open(cfg, &DbTarget::Url(env.conninfo.clone())).await.unwrap();
    let p = |s: &str| VPath::parse(s).unwrap();
    for u in [&alice, &bob] {
        let a = Actor::user(Origin::Ctl, u, None);
        store.mkdir(&a, u, &p("/d")).await.unwrap();
    }
    let contested = write(&store, &alice_actor, &alice, "/d/contested", b"v0".to_vec()).await;
    let cursors = [store.journal_cursor(&alice).await.unwrap(), store.journal_cursor(&bob).await.unwrap()];

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Ok,
        OneOf, // of the writes with the same If-Match, exactly one succeeds
        Conflict,
    }
    let mut jobs = Vec::new();
    for i in 0..40 {
        let bobs = i % 2 == 1;
        jobs.push((bobs, format!("/d/f{i}"), WriteOptions::default(), Expect::Ok, i % 3 == 0));
    }
    for i in 0..4 {
        let opts = WriteOptions { if_match: Some(contested.node.etag.clone()), ..Default::default() };
        jobs.push((false, "/d/contested".to_owned(), opts, Expect::OneOf, i % 2 == 0));
    }
    for i in 0..3 {
        jobs.push((false, format!("/missing/f{i}"), WriteOptions::default(), Expect::Conflict, false));
        let opts = WriteOptions { create_parents: true, ..Default::default() };
        jobs.push((true, format!("/new/deep/f{i}"), opts, Expect::Ok, false));
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(jobs.len()));
    let mut tasks = Vec::new();
    for (n, (bobs, path, opts, expect, second)) in jobs.into_iter().enumerate() {
        let store = if second { other.clone() } else { store.clone() };
        let (user, actor) =
            if bobs { (bob.clone(), bob_actor.clone()) } else { (alice.clone(), alice_actor.clone()) };
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let data = pattern(1_000 + n * 37, n as u64);
            start.wait().await;
            let res = store.write(&actor, &user, &p(&path), std::io::Cursor::new(data.clone()), opts).await;
            (bobs, path, expect, data, res)
        }));
    }
    let mut contested_wins = 0;
    let mut written = Vec::new();
    for t in tasks {
        let (bobs, path, expect, data, res) = t.await.unwrap();
        match (expect, res) {
            (Expect::Ok, Ok(_)) => written.push((bobs, path, data)),
            (Expect::OneOf, Ok(_)) => {
                contested_wins += 1;
                written.push((bobs, path, data));
            }
            (Expect::OneOf, Err(e)) => assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{path}: {e}"),
            (Expect::Conflict, Err(e)) => assert_eq!(e.kind(), ErrorKind::Conflict, "{path}: {e}"),
            (expect, res) => panic!("{path}: expected {expect:?}, got {res:?}"),
        }
    }
    assert_eq!(contested_wins, 1, "exactly one of the writes with the same If-Match wins");
    for (bobs, path, data) in &written {
        let user = if *bobs { &bob } else { &alice };
        let (_, mut f) = store.open_file(user, &p(path)).await.unwrap();
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        assert!(got == *data, "{path}: content");
    }
    let report = store.fsck(None, true).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Each user's journal: gap-free, one entry per write (plus the two folders created).
    for (user, cursor, folders) in [(&alice, cursors[0], 0), (&bob, cursors[1], 2)] {
        let changes = store.changes(user, cursor, 1_000).await.unwrap();
        let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
        let files = written.iter().filter(|w| std::ptr::eq(if w.0 { &bob } else { &alice }, user)).count();
        assert_eq!(seqs, ((cursor + 1)..=(cursor + (files + folders) as i64)).collect::<Vec<_>>());
        let usage = store.usage(user).await.unwrap();
        assert_eq!(usage.used, usage.files + usage.versions + usage.trash);
    }

    // A batch holding a refused write is committed write by write, so whether the round above
    // formed batches depends on the order of arrival. Plain writes alone must: writes committed
    // in one transaction share its instant in the journal.
    let cursor = store.journal_cursor(&alice).await.unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(24));
    let plain: Vec<_> = (0..24)
        .map(|i| {
            let (store, alice, actor, start) =
                (store.clone(), alice.clone(), alice_actor.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                write(&store, &actor, &alice, &format!("/d/plain{i}"), pattern(100, i)).await;
            })
        })
        .collect();
    for t in plain {
        t.await.unwrap();
    }
    let changes = store.changes(&alice, cursor, 100).await.unwrap();
    assert_eq!(changes.len(), 24);
    let shared_instants = changes.windows(2).filter(|w| w[0].at == w[1].at).count();
    assert!(shared_instants > 0, "no two writes were committed together");
    let report = store.fsck(None, true).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // A batch's locks outlive it only while the next batch is at hand (it releases them in the
    // message that opens it): once the writes stop, none is left, and a change needing the
    // whole tree goes ahead at once.
    let held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while tests::sql_i64(&env.db, held) > 0 {
        assert!(std::time::Instant::now() < deadline, "advisory locks still held after the writes");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let d = p("/d");
    let tree_change = store.delete(&alice_actor, &alice, &d, None);
    tokio::time::timeout(std::time::Duration::from_secs(10), tree_change)
        .await
        .expect("a tree change after the writes waited for a lock")
        .unwrap();
}

#[tokio::test]
async fn journal_records_every_kind_of_change() {
    let env = Env::new();
    let (store, user, actor) = open(&env, Clock::system()).await;
    let cursor = store.journal_cursor(&user).await.unwrap();
    let p = |s: &str| VPath::parse(s).unwrap();
    let root_etag = store.stat(&user, &VPath::root()).await.unwrap().etag;
    store.mkdir(&actor, &user, &p("/a")).await.unwrap();
    let w = write(&store, &actor, &user, "/a/f", b"1".to_vec()).await;
    write(&store, &actor, &user, "/a/f", b"22".to_vec()).await;
    store.rename(&actor, &user, &p("/a/f"), &p("/a/g"), store::Replace::Nothing).await.unwrap();
    store.delete(&actor, &user, &p("/a/g"), None).await.unwrap();
    let changes = store.changes(&user, cursor, 100).await.unwrap();
    let kinds: Vec<(&str, String, Option<String>)> = changes
        .iter()
        .map(|c| (c.kind.as_str(), c.path.to_string(), c.old_path.as_ref().map(|p| p.to_string())))
        .collect();
    assert_eq!(
        kinds,
        [
            ("create", "/a".to_owned(), None),
            ("create", "/a/f".to_owned(), None),
            ("modify", "/a/f".to_owned(), None),
            ("move", "/a/g".to_owned(), Some("/a/f".to_owned())),
            ("delete", "/a/g".to_owned(), None),
        ]
    );
    assert!(changes[1..].iter().all(|c| c.file_id == w.node.id), "one id through modify, move, delete");
    assert_eq!(changes[2].size, Some(2));
    // Reading from the middle resumes exactly.
    let tail = store.changes(&user, changes[2].seq, 100).await.unwrap();
    assert_eq!(tail.len(), 2);
    // Folder etags change with every change below them (sync clients walk down by etag).
    assert_ne!(store.stat(&user, &VPath::root()).await.unwrap().etag, root_etag);
}

/// The mount's unlinks in a row: many files to the trash in one transaction, each with its own
/// answer, nothing done for a folder, a missing path or a path named twice.
#[tokio::test]
async fn files_deleted_together_each_go_to_the_trash_once() {
    use store::ErrorKind;
    let env = Env::new();
    let (store, user, actor) = open(&env, Clock::system()).await;
    let p = |s: &str| VPath::parse(s).unwrap();
    store.mkdir(&actor, &user, &p("/d")).await.unwrap();
    store.mkdir(&actor, &user, &p("/d/sub")).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(write(&store, &actor, &user, &format!("/d/f{i}"), pattern(100 + i, i as u64)).await.node.id);
    }
    let lock = store::NewLock { depth_infinite: false, exclusive: true, owner: None, timeout_secs: 600 };
    store.lock(&actor, &user, &p("/d/f3"), lock).await.unwrap();
    let before = store.usage(&user).await.unwrap();
    let cursor = store.journal_cursor(&user).await.unwrap();

    let mut paths: Vec<VPath> = (0..30).map(|i| p(&format!("/d/f{i}"))).collect();
    paths.insert(5, p("/d/sub"));
    paths.insert(9, p("/d/nothing"));
    paths.push(p("/d/f7"));
    let answers = store.delete_files(&actor, &user, paths.clone()).await.unwrap();
    assert_eq!(answers.len(), paths.len());
    assert_eq!(answers[5].as_ref().unwrap_err().kind(), ErrorKind::IsADirectory);
    assert_eq!(answers[9].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(answers.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::NotFound, "f7 named twice");

    let trash = store.trash_list(&user).await.unwrap();
    assert_eq!(trash.len(), 30);
    for (path, answer) in paths.iter().zip(&answers).filter(|(_, a)| a.is_ok()) {
        let tid = *answer.as_ref().unwrap();
        let item = trash.iter().find(|t| t.id == tid).unwrap_or_else(|| panic!("{path}: no item {tid}"));
        let i: usize = path.name()[1..].parse().unwrap();
        assert_eq!(
            (&item.orig_path, item.file_id, item.size, item.is_dir),
            (path, ids[i], 100 + i as u64, false)
        );
        // The bytes moved into the trash as they were.
        let on_disk = std::fs::read(env.data_dir.join(format!(".cairn/trash/alice/{tid}"))).unwrap();
        assert!(on_disk == pattern(100 + i, i as u64), "{path}: trashed content");
        assert!(!env.data_dir.join(format!("files/alice/d/f{i}")).exists(), "{path} still on disk");
        assert_eq!(store.stat(&user, path).await.unwrap_err().kind(), ErrorKind::NotFound);
    }
    assert_eq!(
        store.list(&user, &p("/d")).await.unwrap().iter().map(|n| n.path.name()).collect::<Vec<_>>(),
        ["sub"]
    );
    assert!(store.locks(&user, &p("/d/f3"), false).await.unwrap().is_empty(), "the file's lock went with it");
    // Usage counts the trash: unchanged.
    let after = store.usage(&user).await.unwrap();
    assert_eq!((after.used, after.files, after.trash), (before.used, 0, before.files));
    let changes = store.changes(&user, cursor, 100).await.unwrap();
    assert_eq!(changes.len(), 30);
    assert!(changes.iter().all(|c| c.kind == "delete" && c.at == changes[0].at), "one transaction");
    let report = store.fsck(None, true).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn chunked_uploads_survive_a_restart_and_expire_when_abandoned() {
    let env = Env::new();
    let start = Timestamp(20_000 * DAY);
    let clock = Clock::fixed(start);
    let (store, user, actor) = open(&env, clock.clone()).await;
    store.create_chunked(&actor, &user, "t1", Some(10), None).await.unwrap();
    store.put_chunk(&user, "t1", "1", std::io::Cursor::new(b"hello".to_vec()), Some(5)).await.unwrap();
    assert_eq!(store.usage(&user).await.unwrap().uploads, 10, "the announced total is reserved");

    // A restart (a new Store on the same data): the acknowledged chunk is there, the upload
    // goes on and lands.
    drop(store);
    let mut cfg = StoreConfig::new(&env.data_dir);
    cfg.clock = clock.clone();
    let store = Store::open(cfg, &DbTarget::Url(env.conninfo.clone())).await.unwrap();
    let user = store.user(&user.name).await.unwrap();
    let (_, chunks) = store.chunked(&user, "t1").await.unwrap();
    assert_eq!(chunks.iter().map(|c| (c.name.as_str(), c.size)).collect::<Vec<_>>(), [("1", 5)]);
    store.put_chunk(&user, "t1", "2", std::io::Cursor::new(b"world".to_vec()), Some(5)).await.unwrap();
    let path = VPath::parse("/hw.txt").unwrap();
    store.assemble_chunked(&actor, &user, "t1", &path, WriteOptions::default(), None).await.unwrap();
    assert_eq!(std::fs::read(env.user_dir("alice").join("hw.txt")).unwrap(), b"helloworld");
    assert_eq!(store.stat(&user, &path).await.unwrap().size, 10);

    // Abandoned: a day after its last chunk it is gone, with its chunks and its reservation.
    store.create_chunked(&actor, &user, "t2", Some(1000), None).await.unwrap();
    store.put_chunk(&user, "t2", "1", std::io::Cursor::new(vec![7u8; 100]), Some(100)).await.unwrap();
    clock.set(Timestamp(start.0 + 23 * HOUR));
    store.expire_uploads().await.unwrap();
    assert!(store.chunked(&user, "t2").await.is_ok(), "not yet a day old");
    clock.set(Timestamp(start.0 + 25 * HOUR));
    store.expire_uploads().await.unwrap();
    assert_eq!(store.chunked(&user, "t2").await.unwrap_err().kind(), store::ErrorKind::NotFound);
    assert_eq!(std::fs::read_dir(env.data_dir.join(".cairn/chunks")).unwrap().count(), 0);
    assert_eq!(store.usage(&user).await.unwrap().uploads, 0);
    assert!(store.fsck(None, true).await.unwrap().problems.is_empty());
}

/// Shares, the owner's side: made, changed and revoked by the owner only; they follow their
/// folder through renames and the trash; group members get them while they are members; the
/// higher of a direct and a group role wins; every change is audited.
#[tokio::test]
async fn shares_follow_their_folder_and_reach_group_members_while_they_belong() {
    use store::{ErrorKind, Recipient, Replace, Role};
    let env = Env::new();
    let (store, alice, actor) = open(&env, Clock::system()).await;
    let sys = Actor::system();
    let make = |name: &str| {
        let store = store.clone();
        let name = UserName::parse(name).unwrap();
        async move {
            store
                .create_user(&Actor::system(), &name, "correct horse battery", Default::default())
                .await
                .unwrap()
        }
    };
    let (bob, carol) = (make("bob").await, make("carol").await);
    store.create_group(&sys, "family").await.unwrap();
    store.add_group_member(&sys, "family", &carol.name).await.unwrap();
    let photos = VPath::parse("/Family Photos").unwrap();
    store.mkdir(&actor, &alice, &photos).await.unwrap();
    write(&store, &actor, &alice, "/Family Photos/beach.jpg", pattern(10_000, 1)).await;
    let to_bob = Recipient::User(bob.name.clone());
    let family = Recipient::Group("family".to_owned());

    let s = store.share(&actor, &alice, &photos, &to_bob, Role::Viewer).await.unwrap();
    assert_eq!((s.path.as_ref(), s.role, s.is_dir), (Some(&photos), Role::Viewer, true));
    let again = store.share(&actor, &alice, &photos, &to_bob, Role::Editor).await.unwrap();
    assert_eq!((again.id, again.role), (s.id, Role::Editor), "sharing again changes the role");
    store.share(&actor, &alice, &photos, &family, Role::Viewer).await.unwrap();
    assert_eq!(store.shares_by(&alice).await.unwrap().len(), 2);

    let seen = store.shared_with(&bob).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].owner.as_str(), seen[0].name.as_str(), seen[0].role),
        ("alice", "Family Photos", Role::Editor)
    );
    assert!(seen[0].via_groups.is_empty());
    let seen = store.shared_with(&carol).await.unwrap();
    assert_eq!((seen[0].role, seen[0].via_groups.clone()), (Role::Viewer, vec!["family".to_owned()]));
    // A direct editor share beside the group's viewer share: editor wins, one entry.
    store.share(&actor, &alice, &photos, &Recipient::User(carol.name.clone()), Role::Editor).await.unwrap();
    let seen = store.shared_with(&carol).await.unwrap();
    assert_eq!((seen.len(), seen[0].role), (1, Role::Editor));
    assert!(store.shared_with(&alice).await.unwrap().is_empty(), "one's own shares are not shared with one");

    // The share follows a rename, is suspended in the trash and comes back with a restore.
    let moved = VPath::parse("/Photos 2026").unwrap();
    store.rename(&actor, &alice, &photos, &moved, Replace::Nothing).await.unwrap();
    assert!(store.shares_by(&alice).await.unwrap().iter().all(|s| s.path.as_ref() == Some(&moved)));
    assert_eq!(store.shared_with(&bob).await.unwrap()[0].name, "Photos 2026");
    let tid = store.delete(&actor, &alice, &moved, None).await.unwrap();
    assert!(store.shared_with(&bob).await.unwrap().is_empty(), "a share in the trash is suspended");
    assert!(store.shares_by(&alice).await.unwrap().iter().all(|s| s.path.is_none()));
    store.trash_restore(&actor, &alice, tid, None).await.unwrap();
    assert_eq!(store.shared_with(&bob).await.unwrap().len(), 1);

    // Leaving the group drops the group's part at once.
    store.remove_group_member(&sys, "family", &carol.name).await.unwrap();
    let seen = store.shared_with(&carol).await.unwrap();
    assert_eq!((seen.len(), seen[0].via_groups.len()), (1, 0));

    // Only the owner revokes; someone else's share is not found, as is a share that never was.
    let bobs = store.shares_by(&alice).await.unwrap().into_iter().find(|s| s.recipient == to_bob).unwrap();
    assert_eq!(store.revoke_share(&actor, &bob, bobs.id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(store.revoke_share(&actor, &alice, 999_999).await.unwrap_err().kind(), ErrorKind::NotFound);
    store.revoke_share(&actor, &alice, bobs.id).await.unwrap();
    assert!(store.shared_with(&bob).await.unwrap().is_empty());

    // What cannot be shared says why.
    let kind = |r: store::Result<store::Share>| r.unwrap_err().kind();
    assert_eq!(
        kind(store.share(&actor, &alice, &VPath::root(), &to_bob, Role::Viewer).await),
        ErrorKind::InvalidInput
    );
    let me = Recipient::User(alice.name.clone());
    assert_eq!(kind(store.share(&actor, &alice, &moved, &me, Role::Viewer).await), ErrorKind::InvalidInput);
    let nobody = Recipient::User(UserName::parse("nobody").unwrap());
    assert_eq!(kind(store.share(&actor, &alice, &moved, &nobody, Role::Viewer).await), ErrorKind::NotFound);
    let no_group = Recipient::Group("office".to_owned());
    assert_eq!(kind(store.share(&actor, &alice, &moved, &no_group, Role::Viewer).await), ErrorKind::NotFound);
    let missing = VPath::parse("/nothing here").unwrap();
    assert_eq!(kind(store.share(&actor, &alice, &missing, &to_bob, Role::Viewer).await), ErrorKind::NotFound);

    let actions: Vec<String> = store.audit_tail(100).await.unwrap().into_iter().map(|r| r.action).collect();
    for want in ["share.create", "share.change", "share.revoke"] {
        assert!(actions.iter().any(|a| a == want), "no {want} in {actions:?}");
    }
}
