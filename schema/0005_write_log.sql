-- Small writes logged in the database (see ARCHITECTURE.md, "Small writes"): the bytes of each
-- small file an intent renames into place, by its staging name. The intent row stays until the
-- backing filesystem has been synced (at most a moment later); start-up rewrites these staging
-- files from here before replaying the intent, so an acknowledged small write survives a crash
-- that lost the file's unsynced pages or its renames.
ALTER TABLE intents ADD COLUMN logged_staging TEXT[];
ALTER TABLE intents ADD COLUMN logged_data BYTEA[];
ALTER TABLE intents ADD COLUMN logged_mtime BIGINT[];
