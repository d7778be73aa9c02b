-- One row the writer rewrites to learn whether the database takes commits: at start-up (so a
-- read-only database is refused before the service says it is ready) and while writes are
-- failing (so writes resume by themselves once the disk has room again).
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- When the last probe committed, in UTC.
    at TEXT    NOT NULL
) STRICT;
