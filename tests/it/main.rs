//! Cairn's integration tests: one binary, one module per feature. Each test gets its own
//! database and data directory (see the `tests` harness) and drives the real binaries.

mod api;
mod crash;
mod daemon;
mod dav_big;
mod dav_clients;
mod dav_coherence;
mod dav_litmus;
mod dav_locks;
mod dav_security;
mod dav_tls;
mod fuse;
mod groups;
mod links;
mod migrations;
mod model;
mod nextcloud;
mod ops;
mod paths;
mod quota;
mod scan;
mod scrub;
mod sharing;
mod store_api;
mod stress;
mod sync;
mod tree;
mod vaults;
mod versions;
mod web;
