-- dendrite's durable state. The engine's memory is a pure function of these rows: start-up
-- replays them, so every table holds exactly what is needed to rebuild the same segments, and
-- nothing the engine can derive (segment synapse tables, probabilities, the inverted index).

-- A space: the parameters every neuron in it shares, with the defaults already filled in, so a
-- later version with other defaults rebuilds the same space.
CREATE TABLE spaces (
    name                    TEXT    PRIMARY KEY,
    input_size              INTEGER NOT NULL,
    active_bits             INTEGER NOT NULL,
    synapses_per_pattern    INTEGER NOT NULL,
    threshold               INTEGER NOT NULL,
    max_false_match         REAL    NOT NULL,
    max_segments_per_neuron INTEGER NOT NULL,
    -- Seeds synapse sampling; stored as SQLite's signed 64-bit integer (the API caps it at 2^63 - 1).
    seed                    INTEGER NOT NULL,
    created_at              TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- A neuron exists from its first stored pattern until it is deleted, even with no patterns left.
CREATE TABLE neurons (
    space        TEXT    NOT NULL REFERENCES spaces (name) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    -- The next server-assigned pattern id and segment number: kept so that the ids and segment
    -- numbers of forgotten patterns are never handed out again, across restarts too.
    next_pattern INTEGER NOT NULL,
    next_segment INTEGER NOT NULL,
    PRIMARY KEY (space, name)
) STRICT;

-- A stored pattern with the decisions learning made for it, so replay makes none.
CREATE TABLE patterns (
    -- The order patterns were learned in: replaying by seq rebuilds identical segments.
    seq      INTEGER PRIMARY KEY,
    space    TEXT    NOT NULL,
    neuron   TEXT    NOT NULL,
    id       TEXT    NOT NULL,
    -- The segment's number within the neuron.
    segment  INTEGER NOT NULL,
    -- Sorted cell indices, each a little-endian u32: 40 cells take 160 bytes, not ~200 as text.
    active   BLOB    NOT NULL,
    -- The sampled synapses, in the same encoding.
    synapses BLOB    NOT NULL,
    UNIQUE (space, neuron, id),
    FOREIGN KEY (space, neuron) REFERENCES neurons (space, name) ON DELETE CASCADE
) STRICT;

-- Start-up reads a space's patterns in learning order.
CREATE INDEX patterns_by_space ON patterns (space, seq);
