//! Migrations: applied once, recorded with a checksum; an edited applied migration is refused.

use tests::{Env, admin_sql, describe};

#[test]
fn migrate_is_idempotent_and_refuses_edited_migrations() {
    let env = Env::new();
    let first = env.ctl_json(&["migrate"]);
    assert_eq!(first["applied"][0], "0001_init.sql", "{first}");
    let second = env.ctl_json(&["migrate"]);
    assert_eq!(second["applied"].as_array().unwrap().len(), 0, "{second}");
    assert_eq!(second["already"], first["applied"].as_array().unwrap().len());

    admin_sql(&env.db, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1");
    let out = env.ctl(&["migrate"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("was edited after it was applied"),
        "{}",
        describe(&out)
    );
}
