-- Before a mark (mark_*.sql, clear_doubt.sql), to the end of its transaction. A mark updates at most a page of
-- rows named by their primary key, and must cost that whatever the statistics say. Two plans did not:
-- * stale statistics flipped a join on (campaign, id) to a scan of the campaign's rows for each id (1 s to 149 s
--   for 1,000 contacts), and binding the ids as a Python list made them int2[]/int4[], which a bigint key
--   cannot be probed with;
-- * with a never-analyzed ledger, the row filters (fence, status, sending_at) made the planner expect one
--   matching row and put a full scan of the ledger outside a loop over the ids (mark_sending: 1.8 s for 1,000
--   of a 10,000-contact segment, 5.8 s in a plain EXPLAIN ANALYZE).
-- So a mark is written so that only one plan exists:
-- * the ids are a typed bigint[], unnested as the driving side;
-- * each id is probed by its full primary key in a subquery lateral to it (OFFSET 0: never flattened), which
--   can only run inside the loop over the ids and whose unique-key probe no other index beats;
-- * the row is then updated by the ctid that probe found (a TID scan); the row filters sit on the updated row
--   as one opaque CASE, which the planner cannot count on to be selective, and which is rechecked on the newest
--   version of a row another transaction changed meanwhile. A row changed meanwhile is left alone: its ctid is
--   no longer the one probed, and every writer that can touch a try's rows (an adoption, a newer try) takes
--   them to another fence anyway;
-- * and these settings leave no other join: a nested loop of those probes.
-- One statement (set_config(..., true) is SET LOCAL), so claims.mark sends it, the mark and the COMMIT in one
-- pipelined round trip; settings made inside the mark's own statement would come too late for its planning.
SELECT set_config('enable_seqscan', 'off', true),
       set_config('enable_bitmapscan', 'off', true),
       set_config('enable_hashjoin', 'off', true),
       set_config('enable_mergejoin', 'off', true),
       set_config('enable_memoize', 'off', true),
       set_config('jit', 'off', true);
