-- The number of write transactions ever committed: every write (a store group, a forget, a
-- deletion, a new space) adds one in the transaction it commits with, so a copy of the database
-- (a backup) says exactly which writes it holds. The writer's heartbeat probe does not count.
CREATE TABLE write_sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL CHECK (last >= 0)
) STRICT;

INSERT INTO write_sequence (id, last) VALUES (1, 0);
