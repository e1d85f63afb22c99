//! `fusefs`: Cairn's FUSE mount, the server's own view of every user's files (`MOUNT/USER/...`).
//!
//! Every callback is a thin adapter: kernel terms in, `store` calls, a reply out. What belongs
//! here is only what the kernel protocol needs: the inode table (inode = file id + 1, so an inode
//! survives renames and never needs a lookup table of paths), open handles, and the per-file
//! open state (the draft being written). Versions, quota and SQL stay in `store`:
//! - a file's first write in an open starts a *draft* (a reflink/copy of the content, or empty
//!   on `O_TRUNC`); writes land in the draft; `flush`/`fsync`/the last `release` commit it, and
//!   the replaced content becomes a version once per open (copy-on-write versioning);
//! - a write past the quota fails with `EDQUOT` before any byte of it lands;
//! - changes made elsewhere (WebDAV, REST, `cairnctl`) reach the kernel's caches through the
//!   change journal and fuser's notifier;
//! - read-only opens use kernel passthrough (reads go straight to the backing file) where the
//!   kernel offers it; writes always come through here.

mod behind;
mod errno;
mod fs;
mod locks;
mod mount;
mod settle;
mod state;
mod xattr;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

pub use mount::Mount;

/// A FUSE call's result: an errno for the kernel on failure.
type Res<T> = Result<T, fuser::Errno>;

/// Who owns the files as the mount shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Numeric user id.
    pub uid: u32,
    /// Numeric group id.
    pub gid: u32,
}

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Where (an existing, empty directory).
    pub mountpoint: PathBuf,
    /// The owner of every file, unless `owners` names the Cairn user.
    pub owner: Owner,
    /// Per Cairn user owner.
    pub owners: HashMap<String, Owner>,
    /// Kernel request loops (each with its own cloned /dev/fuse descriptor).
    pub threads: usize,
    /// Use kernel passthrough for read-only opens where the kernel supports it.
    pub passthrough: bool,
}

/// If `mountpoint` holds a FUSE mount whose server is gone (its process was killed), detach it
/// so it can be mounted again. Returns whether something was detached.
pub fn recover_stale(mountpoint: &Path) -> io::Result<bool> {
    // The kernel may answer `stat` of a dead mount from its attribute cache, so ask for a
    // listing, which always goes to the server.
    let probe = std::fs::metadata(mountpoint).and_then(|_| std::fs::read_dir(mountpoint).map(drop));
    match probe {
        Ok(()) => {
            // Only a dead mount (ENOTCONN) is ours to clear; a live one means another server.
            if is_fuse_mount(mountpoint)? {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is already a mounted FUSE file system", mountpoint.display()),
                ));
            }
            Ok(false)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH)
                .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
            tracing::warn!(mountpoint = %mountpoint.display(), "detached a dead FUSE mount left by a crash");
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_fuse_mount(mountpoint: &Path) -> io::Result<bool> {
    let canon = std::fs::canonicalize(mountpoint)?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().any(|line| {
        let mut fields = line.split(' ');
        let target = fields.nth(4).unwrap_or_default();
        let fstype = line.split(" - ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_default();
        fstype.starts_with("fuse") && unescape_mountinfo(target) == canon.as_os_str().to_string_lossy()
    }))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let oct: String = (0..3).filter_map(|_| chars.next()).collect();
            if let Ok(v) = u8::from_str_radix(&oct, 8) {
                out.push(v as char);
                continue;
            }
            out.push('\\');
            out.push_str(&oct);
        } else {
            out.push(c);
        }
    }
    out
}
