-- The FUSE mount's POSIX permission bits (chmod). NULL: the default (0644 files, 0755 folders).
-- WebDAV and the REST API ignore it; it follows the node through moves and copies.
ALTER TABLE nodes ADD COLUMN mode INTEGER CHECK (mode IS NULL OR (mode >= 0 AND mode <= 4095));

-- Which front end made each change, so a front end can tell its own changes from others'
-- (the FUSE mount invalidates kernel caches only for changes it did not make itself).
ALTER TABLE journal ADD COLUMN origin TEXT;
