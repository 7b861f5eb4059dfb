-- A new fencing token: one per claim and per segment try (see schema.sql, dispatch_ledger.fence).
SELECT nextval('dispatch_fence_seq');
