-- dendrite's durable state on PostgreSQL, shared by every replica. The tables hold what the
-- SQLite schema holds (the state a replica loads at start-up); the change log beside them is how
-- replicas that are already running learn what the others wrote.

-- A space: the parameters every neuron in it shares, with the defaults already filled in.
CREATE TABLE spaces (
    name                    TEXT             PRIMARY KEY,
    input_size              BIGINT           NOT NULL,
    active_bits             BIGINT           NOT NULL,
    synapses_per_pattern    BIGINT           NOT NULL,
    threshold               BIGINT           NOT NULL,
    max_false_match         DOUBLE PRECISION NOT NULL,
    max_segments_per_neuron BIGINT           NOT NULL,
    -- Seeds synapse sampling; the API caps it at 2^63 - 1.
    seed                    BIGINT           NOT NULL,
    created_at              TIMESTAMPTZ      NOT NULL DEFAULT now()
);

-- A neuron exists from its first stored pattern until it is deleted, even with no patterns left.
CREATE TABLE neurons (
    space        TEXT   NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    -- The next server-assigned pattern id and segment number: never handed out twice.
    next_pattern BIGINT NOT NULL,
    next_segment BIGINT NOT NULL,
    PRIMARY KEY (space, name)
);

-- A stored pattern with the decisions learning made for it, so replay makes none.
CREATE TABLE patterns (
    -- The order patterns were learned in. Writers of a space hold its lock, so within a space
    -- this order is the order of the change log.
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    space    TEXT   NOT NULL,
    neuron   TEXT   NOT NULL,
    id       TEXT   NOT NULL,
    segment  BIGINT NOT NULL,
    -- Sorted cell indices, each a little-endian u32, as in the SQLite schema.
    active   BYTEA  NOT NULL,
    synapses BYTEA  NOT NULL,
    UNIQUE (space, neuron, id),
    FOREIGN KEY (space, neuron) REFERENCES neurons (space, name) ON DELETE CASCADE
);

CREATE INDEX patterns_by_space ON patterns (space, seq);

-- One row the writer rewrites to learn whether the database takes commits.
CREATE TABLE heartbeat (
    id INTEGER     PRIMARY KEY CHECK (id = 1),
    at TIMESTAMPTZ NOT NULL
);

-- The change log: every committed write, numbered in commit order without gaps. A writer takes
-- its number by updating change_head as the last step before COMMIT, so the row lock orders the
-- commits: when change n is visible, every change before it is too.
CREATE TABLE changes (
    seq          BIGINT      PRIMARY KEY,
    -- create_space, delete_space, store, forget or delete_neuron.
    kind         TEXT        NOT NULL,
    -- The change as JSON: the stored plans, or the names deleted. `json`, not `jsonb`, and stored
    -- uncompressed: a 1000-pattern store is about 440 kB of JSON, which jsonb would convert and
    -- pglz try to compress on every commit (several times the cost of writing it as it is), while
    -- the log is only ever read back whole.
    body         JSON        NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE changes ALTER COLUMN body SET STORAGE EXTERNAL;

CREATE TABLE change_head (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    -- The newest change committed.
    last              BIGINT  NOT NULL CHECK (last >= 0),
    -- Changes up to here were deleted from the log; a replica behind it reloads the tables.
    compacted_through BIGINT  NOT NULL CHECK (compacted_through >= 0)
);

INSERT INTO change_head (id, last, compacted_through) VALUES (1, 0, 0);
