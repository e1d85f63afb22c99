//! The backing directory: the only code that opens, renames or removes anything in it.
//!
//! Layout (relative to `data_dir`):
//!
//! ```text
//! files/USER/<path>            the user's tree, exactly; nothing of ours inside it
//! .cairn/staging/<random>      uploads in progress (removed at start-up)
//! .cairn/versions/USER/<id>    earlier contents, one plain file per version
//! .cairn/trash/USER/<id>       deleted items (a file, or a directory with its contents)
//! .cairn/uploads/<id>          resumable uploads' bytes so far
//! .cairn/signatures/<blake3>   rsync signatures of contents (a cache; any file may go)
//! .cairn/pg/                   the managed PostgreSQL cluster
//! .cairn/lock                  held (flock) by the process that owns the data directory
//! ```
//!
//! Everything lives on one filesystem, so moving content between these places is a rename.
//! Every path is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` from a handle on
//! the data directory, so a symlink planted anywhere in the tree is never followed: the call
//! fails with `ELOOP` instead.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};

use crate::path::{UserName, VPath};
use crate::types::VersionId;

mod dircache;
pub(crate) mod layout;

pub(crate) use dircache::DirCache;

/// Metadata of one entry, never following a symlink.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    /// Symlinks, sockets, devices: never served, never followed.
    Other,
}

/// A handle on the data directory.
#[derive(Debug)]
pub(crate) struct Disk {
    root: PathBuf,
    root_fd: OwnedFd,
}

const RESOLVE: ResolveFlags =
    ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);

fn err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl Disk {
    /// Open the data directory, creating the fixed layout if missing.
    pub(crate) fn open(root: &Path) -> io::Result<Disk> {
        std::fs::create_dir_all(root)?;
        let root = std::fs::canonicalize(root)?;
        let root_fd =
            rustix::fs::open(&root, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(err)?;
        let disk = Disk { root, root_fd };
        // Users' data is for the server alone; `.cairn` only needs to be passable (the managed
        // PostgreSQL, running as another user, lives below it).
        for (dir, mode) in [
            (layout::FILES, 0o700),
            (".cairn", 0o711),
            (layout::STAGING, 0o700),
            (layout::VERSIONS, 0o700),
            (layout::TRASH, 0o700),
            (layout::UPLOADS, 0o700),
            (layout::CHUNKS, 0o700),
            (layout::SIGNATURES, 0o700),
        ] {
            disk.mkdir(dir)?;
            let fd = disk.open_dir(dir)?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(err)?;
        }
        Ok(disk)
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of `rel` (tests look at the disk directly).
    #[cfg(test)]
    pub(crate) fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn open_at(&self, rel: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        self.open_resolving(rel, flags, mode, RESOLVE)
    }

    fn open_resolving(
        &self,
        rel: &str,
        flags: OFlags,
        mode: Mode,
        resolve: ResolveFlags,
    ) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        rustix::fs::openat2(self.root_fd.as_fd(), rel, flags | OFlags::CLOEXEC, mode, resolve).map_err(err)
    }

    fn open_dir(&self, rel: &str) -> io::Result<OwnedFd> {
        self.open_at(rel, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
    }

    /// Open the parent directory of `rel` and return it with the last name.
    fn parent_of<'a>(&self, rel: &'a str) -> io::Result<(OwnedFd, &'a str)> {
        let (parent, name) = split_parent(rel);
        Ok((self.open_dir(parent)?, name))
    }

    /// Open a regular file for reading.
    pub(crate) fn open_read(&self, rel: &str) -> io::Result<File> {
        self.open_regular(rel, RESOLVE)
    }

    /// Open a regular file for reading only if that needs no disk access (every name on the way
    /// is in the dentry cache): `WouldBlock` otherwise. For the calling task, not the blocking pool.
    pub(crate) fn open_read_cached(&self, rel: &str) -> io::Result<File> {
        self.open_regular(rel, RESOLVE | ResolveFlags::CACHED)
    }

    fn open_regular(&self, rel: &str, resolve: ResolveFlags) -> io::Result<File> {
        let fd = self.open_resolving(rel, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty(), resolve)?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        Ok(file)
    }

    /// All `len` bytes of `file` if they are in the page cache (`RWF_NOWAIT`); `None` if reading
    /// them would wait for the disk or the file is shorter.
    pub(crate) fn read_cached(file: &File, len: usize) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let mut iov = [io::IoSliceMut::new(&mut buf[done..])];
            match rustix::io::preadv2(file, &mut iov, done as u64, rustix::io::ReadWriteFlags::NOWAIT) {
                Ok(0) => return Ok(None),
                Ok(n) => done += n,
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(Some(buf))
    }

    /// Open (creating it with `create`) a regular file for reading and writing, readable only by us.
    pub(crate) fn open_rw(&self, rel: &str, create: bool) -> io::Result<File> {
        let flags = OFlags::RDWR
            | OFlags::NOFOLLOW
            | if create { OFlags::CREATE | OFlags::EXCL } else { OFlags::empty() };
        // openat2 refuses a mode without O_CREAT.
        let mode = if create { Mode::from_raw_mode(0o600) } else { Mode::empty() };
        let file = File::from(self.open_at(rel, flags, mode)?);
        if !file.metadata()?.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        Ok(file)
    }

    /// Create a fresh staging file, readable only by us.
    pub(crate) fn create_staging(&self) -> io::Result<(String, File)> {
        let dir = self.open_dir(layout::STAGING)?;
        loop {
            let name = format!("{}.part", random_hex(12));
            match rustix::fs::openat(
                &dir,
                name.as_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => return Ok((layout::staging(&name), File::from(fd))),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(err(e)),
            }
        }
    }

    /// Write `data` as the staging file `rel` (created or truncated) with modification time
    /// `mtime_ns`, and fsync it: start-up restores a logged small write's staged content this
    /// way before replaying its intent.
    pub(crate) fn restore_staging(&self, rel: &str, data: &[u8], mtime_ns: i64) -> io::Result<()> {
        use std::io::Write;
        let name = rel
            .strip_prefix(layout::STAGING)
            .and_then(|n| n.strip_prefix('/'))
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{rel} is not a staging file"))
            })?;
        let dir = self.open_dir(layout::STAGING)?;
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::CREATE | OFlags::TRUNC | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
        .map_err(err)?;
        let mut file = File::from(fd);
        file.write_all(data)?;
        // After the write, which sets the time to now.
        rustix::fs::futimens(&file, &times(mtime_ns)).map_err(err)?;
        file.sync_all()
    }

    /// Make everything written to the backing filesystem so far durable (syncfs): the data of
    /// logged small writes and the renames that put them in place.
    pub(crate) fn sync_all(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.root_fd).map_err(err)
    }

    /// A new staging file holding a copy of the file `from`: a reflink (FICLONE) where the
    /// filesystem shares blocks, a kernel-side copy otherwise. Not fsynced (drafts sync at commit).
    pub(crate) fn clone_to_staging(&self, from: &str) -> io::Result<(String, File)> {
        let mut src = self.open_read(from)?;
        let (staging, mut dst) = self.create_staging()?;
        let res = match rustix::fs::ioctl_ficlone(&dst, &src) {
            Ok(()) => Ok(()),
            // std::io::copy uses copy_file_range between files.
            Err(_) => io::copy(&mut src, &mut dst).map(|_| ()),
        };
        if let Err(e) = res {
            let _ = self.remove(&staging);
            return Err(e);
        }
        Ok((staging, dst))
    }

    /// Create an empty file (0600, like staged files) with modification time `mtime_ns`; an
    /// existing entry is left alone.
    pub(crate) fn create_empty(&self, rel: &str, mtime_ns: i64) -> io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        let fd = match rustix::fs::openat(
            &dir,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::EXIST) => return Ok(()),
            Err(e) => return Err(err(e)),
        };
        rustix::fs::futimens(&fd, &times(mtime_ns)).map_err(err)
    }

    /// (total, available) bytes of the filesystem holding the data directory.
    pub(crate) fn space(&self) -> io::Result<(u64, u64)> {
        let st = rustix::fs::fstatvfs(&self.root_fd).map_err(err)?;
        Ok((st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize))
    }

    /// The filesystem holding the data directory: (total, available) bytes, (total, available)
    /// inodes, and whether it takes writes. The mount flag is not enough: an ext4 that hits an
    /// error with `errors=remount-ro` refuses writes (EROFS) while `statvfs` still says
    /// read-write (measured on Linux 6.18), so an empty file is created and removed in staging.
    pub(crate) fn fs_state(&self) -> io::Result<FsState> {
        let st = rustix::fs::fstatvfs(&self.root_fd).map_err(err)?;
        let mounted_ro = st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY);
        let probe = match mounted_ro {
            true => Err(io::Error::from_raw_os_error(libc::EROFS)),
            false => self.create_staging().and_then(|(rel, file)| {
                drop(file);
                self.remove(&rel)
            }),
        };
        let (read_only, write_error) = match probe {
            Ok(()) => (false, None),
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        };
        Ok(FsState {
            bytes: (st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize),
            inodes: (st.f_files, st.f_favail),
            read_only,
            write_error,
        })
    }

    /// Set a file's or folder's modification time (the native file mirrors the metadata).
    pub(crate) fn set_mtime(&self, rel: &str, mtime_ns: i64) -> io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        let name = if name.is_empty() { "." } else { name };
        rustix::fs::utimensat(&dir, name, &times(mtime_ns), AtFlags::SYMLINK_NOFOLLOW).map_err(err)
    }

    /// Create a fresh, empty staging directory (for copying a tree).
    pub(crate) fn create_staging_dir(&self) -> io::Result<String> {
        let dir = self.open_dir(layout::STAGING)?;
        loop {
            let name = format!("{}.dir", random_hex(12));
            match rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o700)) {
                Ok(()) => return Ok(layout::staging(&name)),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(err(e)),
            }
        }
    }

    /// Metadata of `rel`, or `None` if it does not exist.
    pub(crate) fn stat(&self, rel: &str) -> io::Result<Option<Meta>> {
        let (dir, name) = self.parent_of(rel)?;
        let name = if name.is_empty() { "." } else { name };
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(meta_of(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Rename, replacing a file at `to` (the POSIX rename).
    pub(crate) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        rustix::fs::renameat(&from_dir, from_name, &to_dir, to_name).map_err(err)
    }

    /// Create a directory; an existing directory is fine.
    pub(crate) fn mkdir(&self, rel: &str) -> io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => match self.stat(rel)? {
                Some(Meta { kind: Kind::Dir, .. }) => Ok(()),
                _ => Err(io::Error::from_raw_os_error(libc::EEXIST)),
            },
            Err(e) => Err(err(e)),
        }
    }

    /// Create a directory and its missing parents.
    pub(crate) fn mkdir_all(&self, rel: &str) -> io::Result<()> {
        let mut prefix = String::new();
        for seg in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(seg);
            self.mkdir(&prefix)?;
        }
        Ok(())
    }

    /// Remove a file or a whole directory tree; a missing one is fine.
    pub(crate) fn remove(&self, rel: &str) -> io::Result<()> {
        let (dir, name) = match self.parent_of(rel) {
            Ok(x) => x,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_at(&dir, std::ffi::OsStr::new(name))
    }

    /// fsync a directory, making renames and creations in it durable.
    pub(crate) fn fsync_dir(&self, rel: &str) -> io::Result<()> {
        let fd = self.open_dir(rel)?;
        rustix::fs::fsync(&fd).map_err(err)
    }

    /// The entries of a directory (names as raw bytes, since the disk may hold anything).
    pub(crate) fn read_dir(&self, rel: &str) -> io::Result<Vec<(Vec<u8>, Meta)>> {
        let fd = self.open_dir(rel)?;
        read_dir_fd(&fd)
    }

    /// Copy the file `from` into a new staging file, fsynced. Returns the staging path.
    pub(crate) fn copy_to_staging(&self, from: &str) -> io::Result<String> {
        let mut src = self.open_read(from)?;
        let (staging, mut dst) = self.create_staging()?;
        let res = (|| {
            io::copy(&mut src, &mut dst)?;
            let mtime = src.metadata()?.modified()?;
            dst.set_modified(mtime)?;
            dst.sync_all()
        })();
        if let Err(e) = res {
            let _ = self.remove(&staging);
            return Err(e);
        }
        Ok(staging)
    }

    /// The data directory's lock file handle (see `datadir`).
    pub(crate) fn open_lock_file(&self) -> io::Result<File> {
        let fd = self.open_at(
            ".cairn/lock",
            OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(File::from(fd))
    }
}

/// `rel`'s folder ("" for the data directory itself) and last name.
pub(crate) fn split_parent(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(idx) => (&rel[..idx], &rel[idx + 1..]),
        None => ("", rel),
    }
}

/// Access and modification time both `mtime_ns` (nanoseconds since the epoch).
fn times(mtime_ns: i64) -> rustix::fs::Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    rustix::fs::Timestamps { last_access: t, last_modification: t }
}

fn meta_of(st: &rustix::fs::Stat) -> Meta {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        _ => Kind::Other,
    };
    Meta {
        kind,
        size: st.st_size as u64,
        mtime_ns: st.st_mtime.saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec as i64),
    }
}

fn read_dir_fd(fd: &OwnedFd) -> io::Result<Vec<(Vec<u8>, Meta)>> {
    let mut dir = rustix::fs::Dir::read_from(fd).map_err(err)?;
    let mut out = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let st = match rustix::fs::statat(fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(err(e)),
        };
        out.push((name.to_vec(), meta_of(&st)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Remove `name` in `dir`, recursively for directories, never following symlinks.
fn remove_at(dir: &OwnedFd, name: &std::ffi::OsStr) -> io::Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        for (child, _) in read_dir_fd(&sub)? {
            remove_at(&sub, std::ffi::OsStr::from_bytes(&child))?;
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(err(e)),
        }
    } else {
        match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
}

/// Start writing `len` bytes of `f` from `at` to the disk now, without waiting, so that the
/// fsync at the end of a large write finds little left to do: the write then takes as long as
/// the slower of its source and the disk, not the sum. Only a hint: errors surface at the
/// fsync.
pub(crate) fn start_writeback(f: &File, at: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; the kernel checks the range.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            at as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// `n` random bytes as hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random source failed");
    hex::encode(buf)
}

/// The file system's time now, to compare with file mtimes (a file being written a moment ago).
/// Not the store's [`crate::Clock`], which tests move: the disk's times follow the wall clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_now() -> crate::Timestamp {
    crate::Timestamp::from_system(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The non-blocking small-read path: a file just written is in memory and read whole; a
    /// request for more than the file holds, a folder and a symlink get no bytes.
    #[test]
    fn cached_reads_serve_what_is_in_memory_and_nothing_else() {
        let tmp = std::env::temp_dir().join(format!("cairn-disk-cached-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let disk = Disk::open(&tmp).unwrap();
        disk.mkdir_all("files/u").unwrap();
        std::fs::write(disk.abs("files/u/a"), b"hello").unwrap();
        let file = disk.open_read_cached("files/u/a").unwrap();
        assert_eq!(Disk::read_cached(&file, 5).unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(Disk::read_cached(&file, 6).unwrap(), None);
        assert_eq!(disk.open_read_cached("files/u").unwrap_err().raw_os_error(), Some(libc::EISDIR));
        std::os::unix::fs::symlink("a", disk.abs("files/u/l")).unwrap();
        assert!(disk.open_read_cached("files/u/l").is_err());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

/// The state of the filesystem holding the data directory (`Store::data_dir_state`).
#[derive(Debug, Clone)]
pub struct FsState {
    /// (total, available to unprivileged users) bytes.
    pub bytes: (u64, u64),
    /// (total, available) inodes.
    pub inodes: (u64, u64),
    /// Writes fail with EROFS (mounted read-only, or made so by an error).
    pub read_only: bool,
    /// Creating a file failed otherwise (permissions, I/O errors).
    pub write_error: Option<String>,
}

impl FsState {
    /// Whether the data directory takes writes, or why not ("is read-only", "refuses writes:
    /// …"), to follow "the data directory".
    pub fn writable(&self) -> Result<(), String> {
        match (&self.write_error, self.read_only) {
            (_, true) => Err("is read-only".to_owned()),
            (Some(e), false) => Err(format!("refuses writes: {e}")),
            (None, false) => Ok(()),
        }
    }
}
