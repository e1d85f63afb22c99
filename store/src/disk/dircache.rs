//! Folder handles kept for a run of operations.

use super::*;

/// Folder handles kept for a run of operations (a batch's renames, its preflight): each folder
/// is resolved (safely, as every path is) once for the run, not once per operation. A folder
/// moved or removed during the run must be [`DirCache::forget`]ten: its handle would follow it.
pub(crate) struct DirCache<'d> {
    disk: &'d Disk,
    open: std::collections::HashMap<String, OwnedFd>,
}

impl<'d> DirCache<'d> {
    pub(crate) fn new(disk: &'d Disk) -> DirCache<'d> {
        DirCache { disk, open: std::collections::HashMap::new() }
    }

    /// The folder `rel`, opened on first use.
    fn dir(&mut self, rel: &str) -> io::Result<&OwnedFd> {
        if !self.open.contains_key(rel) {
            let fd = self.disk.open_dir(rel)?;
            self.open.insert(rel.to_owned(), fd);
        }
        Ok(&self.open[rel])
    }

    /// Metadata of `rel`, or `None` if it does not exist (nor does its folder).
    pub(crate) fn stat(&mut self, rel: &str) -> io::Result<Option<Meta>> {
        let (parent, name) = split_parent(rel);
        let dir = match self.dir(parent) {
            Ok(dir) => dir,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let name = if name.is_empty() { "." } else { name };
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(meta_of(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    pub(crate) fn exists(&mut self, rel: &str) -> io::Result<bool> {
        Ok(self.stat(rel)?.is_some())
    }

    /// Rename: with `replace`, replacing a file at `to` (the POSIX rename); without, failing
    /// with `EEXIST` if anything is there. A folder moved is forgotten.
    pub(crate) fn rename(&mut self, from: &str, to: &str, replace: bool) -> io::Result<()> {
        let ((from_dir, from_name), (to_dir, to_name)) = (split_parent(from), split_parent(to));
        self.dir(from_dir)?;
        self.dir(to_dir)?;
        let flags = if replace { RenameFlags::empty() } else { RenameFlags::NOREPLACE };
        let (f, t) = (&self.open[from_dir], &self.open[to_dir]);
        match rustix::fs::renameat_with(f, from_name, t, to_name, flags) {
            Ok(()) => {}
            // A filesystem without RENAME_NOREPLACE: look, then rename (nothing else renames
            // into our fresh names meanwhile).
            Err(rustix::io::Errno::INVAL) if !replace => {
                if self.exists(to)? {
                    return Err(io::Error::from_raw_os_error(libc::EEXIST));
                }
                let (f, t) = (&self.open[from_dir], &self.open[to_dir]);
                rustix::fs::renameat(f, from_name, t, to_name).map_err(err)?;
            }
            Err(e) => return Err(err(e)),
        }
        self.forget(from);
        Ok(())
    }

    /// Drop the handles of `rel` and of every folder below it (moved or removed).
    pub(crate) fn forget(&mut self, rel: &str) {
        self.open
            .retain(|k, _| !(k == rel || (k.starts_with(rel) && k.as_bytes().get(rel.len()) == Some(&b'/'))));
    }

    /// fsync a folder, making renames and creations in it durable.
    pub(crate) fn fsync_dir(&mut self, rel: &str) -> io::Result<()> {
        rustix::fs::fsync(self.dir(rel)?).map_err(err)
    }

    /// fsync the file `rel` (its data and size, as it is now).
    pub(crate) fn fsync_file(&mut self, rel: &str) -> io::Result<()> {
        let (parent, name) = split_parent(rel);
        let fd = rustix::fs::openat(
            self.dir(parent)?,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(err)?;
        rustix::fs::fsync(&fd).map_err(err)
    }
}
