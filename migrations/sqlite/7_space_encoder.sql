-- A space's encoder: the spec of the fields that turn records into patterns, as compact JSON with
-- every default filled in, or NULL for a space that takes bit lists only. Immutable like the
-- other parameters.
ALTER TABLE spaces ADD COLUMN encoder TEXT;
