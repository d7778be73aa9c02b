-- A checksum of each stored pattern's columns (FNV-1a, 64-bit, over space, neuron, id, segment,
-- active and synapses, each preceded by its length; see store::pattern_checksum), written with
-- the row and verified when start-up reads it back: a changed byte inside a pattern (a damaged
-- page that still parses) stops start-up naming the row instead of being served. Rows stored
-- before this column existed have none, and are loaded unverified.
ALTER TABLE patterns ADD COLUMN checksum INTEGER;
