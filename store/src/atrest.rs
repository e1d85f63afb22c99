//! Whether the data directory is encrypted at rest: the block device under it, read from sysfs,
//! is a dm-crypt mapping (LUKS or plain) or stacked on one (LVM over LUKS, say). Cairn keeps
//! plain native files, so a stolen disk is answered by the disk's encryption, not by Cairn's;
//! `cairnctl status` and the daemon's start-up log say which is the case (README: "Encryption
//! at rest"). Vaults are the answer when the server's admin must not read the files either.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// What the data directory sits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AtRest {
    /// On a dm-crypt device, or on a device stacked on one.
    Encrypted {
        /// The block device the directory is on (`dm-1`).
        device: String,
        /// The dm-crypt mapping that encrypts it (its name, `luks-…`).
        by: String,
    },
    /// On a block device with no dm-crypt below it.
    NotEncrypted { device: String },
    /// In memory: nothing is at rest (tmpfs).
    InMemory,
    /// Not on a block device Cairn can see (an overlay, a network file system, a container).
    Unknown { why: String },
}

impl AtRest {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            AtRest::Encrypted { device, by } => format!("encrypted (dm-crypt {by} under {device})"),
            AtRest::NotEncrypted { device } => {
                format!("NOT encrypted: {device} has no dm-crypt below it (a stolen disk reads as it is)")
            }
            AtRest::InMemory => "in memory (tmpfs): nothing is at rest".to_owned(),
            AtRest::Unknown { why } => format!("unknown ({why})"),
        }
    }
}

/// Look at `dir`'s device.
pub fn at_rest(dir: &Path) -> AtRest {
    use std::os::unix::fs::MetadataExt;
    // `f_type`'s and the magic's types differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    let tmpfs = rustix::fs::statfs(dir).is_ok_and(|fs| fs.f_type as i64 == libc::TMPFS_MAGIC as i64);
    if tmpfs {
        return AtRest::InMemory;
    }
    let dev = match std::fs::metadata(dir) {
        Ok(m) => m.dev(),
        Err(e) => return AtRest::Unknown { why: format!("{}: {e}", dir.display()) },
    };
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    at_rest_in(Path::new("/sys"), major, minor)
}

/// [`at_rest`] for device `major:minor`, reading the sysfs mounted at `sys`.
fn at_rest_in(sys: &Path, major: u32, minor: u32) -> AtRest {
    let node = sys.join(format!("dev/block/{major}:{minor}"));
    let Ok(real) = std::fs::canonicalize(&node) else {
        return AtRest::Unknown { why: format!("device {major}:{minor} is not a block device") };
    };
    let device = name_of(&real);
    match crypt_below(sys, &real, 0) {
        Some(by) => AtRest::Encrypted { device, by },
        None => AtRest::NotEncrypted { device },
    }
}

fn name_of(dev: &Path) -> String {
    dev.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The dm-crypt mapping at or below `dev` (its sysfs directory), following `slaves/`.
fn crypt_below(sys: &Path, dev: &Path, depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    let uuid = std::fs::read_to_string(dev.join("dm/uuid")).unwrap_or_default();
    if uuid.starts_with("CRYPT-") {
        let name = std::fs::read_to_string(dev.join("dm/name")).unwrap_or_default();
        return Some(match name.trim() {
            "" => name_of(dev),
            n => n.to_owned(),
        });
    }
    let slaves: Vec<PathBuf> = std::fs::read_dir(dev.join("slaves"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| sys.join("class/block").join(e.file_name()))
        .collect();
    slaves
        .iter()
        .find_map(|s| crypt_below(sys, &std::fs::canonicalize(s).unwrap_or_else(|_| s.clone()), depth + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs laid out as the kernel lays it out: `dev/block/M:m` links to the device's
    /// directory, `class/block/NAME` too, a dm device has `dm/uuid` and `dm/name`, and a stacked
    /// one lists what it sits on in `slaves/`.
    fn sysfs() -> tempdir::Dir {
        let t = tempdir::Dir::new();
        let s = &t.0;
        let dev = |name: &str, uuid: Option<&str>, slaves: &[&str]| {
            let d = s.join("devices/virtual/block").join(name);
            std::fs::create_dir_all(d.join("slaves")).unwrap();
            if let Some(u) = uuid {
                std::fs::create_dir_all(d.join("dm")).unwrap();
                std::fs::write(d.join("dm/uuid"), format!("{u}\n")).unwrap();
                std::fs::write(d.join("dm/name"), format!("{name}-mapped\n")).unwrap();
            }
            for sl in slaves {
                std::fs::create_dir_all(d.join("slaves").join(sl)).unwrap();
            }
            std::fs::create_dir_all(s.join("class/block")).unwrap();
            std::os::unix::fs::symlink(&d, s.join("class/block").join(name)).unwrap();
            d
        };
        std::fs::create_dir_all(s.join("dev/block")).unwrap();
        let link = |mm: &str, d: &Path| std::os::unix::fs::symlink(d, s.join("dev/block").join(mm)).unwrap();
        link("8:1", &dev("sda1", None, &[]));
        link("253:0", &dev("dm-0", Some("CRYPT-LUKS2-0123abcd-luks-0123"), &["sda2"]));
        link("253:1", &dev("dm-1", Some("LVM-abcdef"), &["dm-0"]));
        link("253:2", &dev("dm-2", Some("LVM-fedcba"), &["sda1"]));
        t
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "cairn-sysfs-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn dm_crypt_is_found_at_the_device_or_below_it() {
        let t = sysfs();
        let s = &t.0;
        assert_eq!(at_rest_in(s, 8, 1), AtRest::NotEncrypted { device: "sda1".into() });
        assert_eq!(
            at_rest_in(s, 253, 0),
            AtRest::Encrypted { device: "dm-0".into(), by: "dm-0-mapped".into() }
        );
        // LVM over LUKS.
        assert_eq!(
            at_rest_in(s, 253, 1),
            AtRest::Encrypted { device: "dm-1".into(), by: "dm-0-mapped".into() }
        );
        // LVM over a plain partition.
        assert_eq!(at_rest_in(s, 253, 2), AtRest::NotEncrypted { device: "dm-2".into() });
        assert!(matches!(at_rest_in(s, 0, 42), AtRest::Unknown { .. }));
    }
}
