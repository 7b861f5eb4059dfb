-- Before a mark (mark_*.sql, clear_doubt.sql), to the end of its transaction: the marks update at most a page of
-- rows named by their primary key, driven from unnest(%(contact_ids)s::bigint[]). The typed array lets the
-- planner use the bigint key (a Python int list binds as int2[]/int4[], which a hash join against the bigint key
-- cannot use), and these settings keep the plan a nested loop of primary-key probes whatever the statistics say
-- (stale statistics flipped it to scans of the whole ledger: 1 s to 149 s for 1,000 contacts).
SET LOCAL enable_seqscan = off;
SET LOCAL enable_hashjoin = off;
SET LOCAL enable_mergejoin = off;
SET LOCAL enable_bitmapscan = off;
SET LOCAL jit = off;
