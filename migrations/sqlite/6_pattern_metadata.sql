-- A pattern's metadata: the JSON object an application stored with it, as compact text (keys
-- sorted), or NULL when it has none. Covered by the row's checksum when present.
ALTER TABLE patterns ADD COLUMN metadata TEXT;
