-- A pattern's metadata: the JSON object an application stored with it, as compact text (keys
-- sorted), or NULL when it has none. `text`, not `jsonb`: it is written and read back whole and
-- must come back byte for byte as every replica's engine and the SQLite schema hold it.
ALTER TABLE patterns ADD COLUMN metadata TEXT;
