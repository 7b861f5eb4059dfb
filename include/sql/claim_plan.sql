-- For the rest of the claim's transaction: no statement of the claim reads a table whole. Each one is driven by
-- the batch (the temporary tables claim_window and claim_candidates, the latter indexed by id) or by a keyset (a
-- mark, the window) and reaches contacts, contact_phones and the ledger by index probes, so its cost follows the
-- batch, not the tables. Left to its estimates (random_page_cost), the planner judges 10,000 probes dearer than
-- hashing or merging with a walk of all of contacts and contact_phones (measured at 1M contacts: 3.2 s for a claim
-- of 10,000 instead of 0.x s), and that walk grows with the tables. Temporary tables are still read whole: they
-- hold only the batch. JIT off too (no_jit.sql says why). One statement (set_config(..., true) is SET LOCAL).
SELECT set_config('enable_seqscan', 'off', true),
       set_config('enable_mergejoin', 'off', true),
       set_config('enable_hashjoin', 'off', true),
       set_config('jit', 'off', true);
