-- A walk's first pass over its window (the contacts rows after its cursor, in (updated_at, id) order): how many
-- rows the window holds, and the updated_at of the first one whose number is stale for the region (NULL: none),
-- by the test phones_changed.sql applies row by row. A window of up-to-date rows is then caught up without
-- reading its rows out one chunk at a time, and a walk with stale rows starts its chunks at the first of them.
-- One statement, left to the planner: after an import it reads a million-row window in one pass against
-- contact_phones (0.6 s in bench_throughput.py, against 4.8 s for the chunks), a small window by a probe per row.
-- A row whose updated_at is 'infinity' or '-infinity' has no place in that order (nor a value Python can hold):
-- the third column names one, and the walk refuses to go on (compliance/phones.py).
SELECT count(*),
       min(c.updated_at) FILTER (WHERE p.source_updated_at IS DISTINCT FROM c.updated_at AND isfinite(c.updated_at)),
       min(c.id) FILTER (WHERE NOT isfinite(c.updated_at))
FROM contacts c
LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.region = %(region)s
WHERE (c.updated_at, c.id) > (%(after_updated_at)s::timestamptz, %(after_id)s::bigint);
