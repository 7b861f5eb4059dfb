-- The eligibility queries are many small index probes whose cost estimate can trigger PostgreSQL's JIT, which
-- then spends seconds compiling them for nothing (measured: 3.5 s of a 4.3 s claim of 5,000). Off for the
-- rest of this transaction.
SET LOCAL jit = off;
