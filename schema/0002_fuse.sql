-- The FUSE mount's POSIX permission bits (chmod). NULL: the default (0644 files, 0755 folders).
-- WebDAV and the REST API ignore it; it follows the node through moves and copies.
ALTER TABLE nodes ADD COLUMN mode INTEGER CHECK (mode IS NULL OR (mode >= 0 AND mode <= 4095));
