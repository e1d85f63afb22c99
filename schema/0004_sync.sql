-- The change feed: journal rows older than the retention are pruned; `journal_floor` is the
-- newest seq pruned, so a cursor below it has missed changes (the client must list again).
ALTER TABLE users ADD COLUMN journal_floor BIGINT NOT NULL DEFAULT 0;
CREATE INDEX journal_at ON journal (at);
