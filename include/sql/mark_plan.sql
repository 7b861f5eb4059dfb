-- Before a mark (mark_*.sql, clear_doubt.sql), to the end of its transaction. A mark updates at most a page of
-- rows named by their primary key, and must cost that whatever the statistics say (stale statistics flipped the
-- plan to a scan of the campaign's rows for each id: 1 s to 149 s for 1,000 contacts). So:
-- * the ids are a typed bigint[] (a Python int list binds as int2[]/int4[]), unnested as the driving side;
-- * the key (campaign, id) comes from a subquery lateral to each id, not flattened (OFFSET 0), and the status
--   test is a CASE, so the ledger has no restriction an index could serve without the id (no scan of the
--   campaign's rows or of a partial index such as dispatch_ledger_undelivered_idx): its only index path is a
--   primary-key probe per id;
-- * and these settings leave no other plan: a nested loop of those probes.
-- One statement (set_config(..., true) is SET LOCAL), so claims.mark sends it, the mark and the COMMIT in one
-- pipelined round trip; settings made inside the mark's own statement would come too late for its planning.
SELECT set_config('enable_seqscan', 'off', true),
       set_config('enable_bitmapscan', 'off', true),
       set_config('enable_hashjoin', 'off', true),
       set_config('enable_mergejoin', 'off', true),
       set_config('enable_memoize', 'off', true),
       set_config('jit', 'off', true);
