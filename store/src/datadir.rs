//! The data directory's owner lock: one `cairnd` (or, while none runs, one `cairnctl`) per data
//! directory. A second `cairnd` on the same directory is refused instead of racing the first.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use rustix::fs::FlockOperation;

use crate::disk::Disk;
use crate::{Error, ErrorKind, Result};

/// Held for the life of the owning process; released on drop (or by the kernel at exit).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Take the lock, or fail with `Busy` naming the holder.
    pub fn acquire(data_dir: &Path, holder: &str) -> Result<DataDirLock> {
        match DataDirLock::try_acquire(data_dir, holder)? {
            Ok(lock) => Ok(lock),
            Err(current) => Err(Error::new(
                ErrorKind::Busy,
                format!("data directory {} is in use by {current}", data_dir.display()),
            )),
        }
    }

    /// Take the lock if free; otherwise say who holds it.
    pub fn try_acquire(data_dir: &Path, holder: &str) -> Result<std::result::Result<DataDirLock, String>> {
        let disk =
            Disk::open(data_dir).map_err(|e| Error::io(format!("opening {}", data_dir.display()), e))?;
        let mut file = disk.open_lock_file().map_err(|e| Error::io("opening the lock file", e))?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = file.seek(SeekFrom::Start(0));
                let _ = writeln!(file, "{holder} (pid {})", std::process::id());
                Ok(Ok(DataDirLock { _file: file }))
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut current = String::new();
                let _ = file.read_to_string(&mut current);
                let current = current.trim();
                Ok(Err(if current.is_empty() { "another process".to_owned() } else { current.to_owned() }))
            }
            Err(e) => Err(Error::io(
                "locking the data directory",
                std::io::Error::from_raw_os_error(e.raw_os_error()),
            )),
        }
    }
}
