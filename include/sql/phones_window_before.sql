-- How many rows of a walk's window lie before its first stale row's updated_at (phones_first_stale.sql): the
-- rows the walk found up to date without reading them, counted by contacts_updated_at_id_idx alone.
SELECT count(*)
FROM contacts c
WHERE (c.updated_at, c.id) > (%(after_updated_at)s::timestamptz, %(after_id)s::bigint)
  AND c.updated_at < %(first_stale_at)s;
