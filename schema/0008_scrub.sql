-- The integrity scrub (see store/src/scrub.rs): where the pass under way is, and what it found.

-- One row. Times are unix nanoseconds.
CREATE TABLE scrub_state (
    one              BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    -- When scrubbing became due for this server: the first pass starts a random 1 to 25 hours
    -- after it, so that a fresh install is not read end to end while it is being set up.
    since            BIGINT NOT NULL,
    -- The pass under way (NULL: none) and its resume position: phase 0 walks live files by
    -- node id, phase 1 versions by version id; `after_id` is the last id done.
    pass_started     BIGINT,
    phase            SMALLINT NOT NULL DEFAULT 0 CHECK (phase IN (0, 1)),
    after_id         BIGINT NOT NULL DEFAULT 0,
    files_done       BIGINT NOT NULL DEFAULT 0,
    bytes_done       BIGINT NOT NULL DEFAULT 0,
    -- Files and versions in the database but not on disk (what `fsck` would report as missing).
    missing          BIGINT NOT NULL DEFAULT 0,
    -- The last complete pass.
    last_started     BIGINT,
    last_completed   BIGINT,
    last_files       BIGINT,
    last_bytes       BIGINT,
    last_missing     BIGINT,
    -- `cairnctl scrub pause` (until then) and `cairnctl scrub start` (as soon as possible).
    paused_until     BIGINT,
    start_requested  BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO scrub_state (since) VALUES ((extract(epoch FROM now()) * 1e9)::BIGINT);

-- Content whose bytes on disk no longer hash to the recorded blake3 (rot, not an edit: the
-- size and modification time are unchanged). Kept after it is resolved, as the record.
CREATE TABLE scrub_findings (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The live file (with the etag of the damaged content) or the version.
    node_id     BIGINT,
    etag        TEXT,
    version_id  BIGINT,
    path        TEXT NOT NULL,
    expected    BYTEA NOT NULL,
    actual      BYTEA NOT NULL,
    found_at    BIGINT NOT NULL,
    -- quarantined: reads refused until the content is replaced or removed;
    -- repaired: rewritten from an identical copy (`source` says which);
    -- resolved: the file was written, restored or deleted since.
    state       TEXT NOT NULL CHECK (state IN ('quarantined', 'repaired', 'resolved')),
    source      TEXT,
    CHECK ((node_id IS NULL) <> (version_id IS NULL))
);
CREATE INDEX scrub_findings_open ON scrub_findings (state) WHERE state = 'quarantined';
