-- Read back absent after every request that carried them had settled: Genesys does not hold them and no such
-- request can still be applied. They are ordinary pending contacts again.
-- The page rows: one primary-key probe per id, then the row by its ctid (mark_page_rows.sql, mark_plan.sql).
UPDATE dispatch_ledger AS l
SET sending_at = NULL, updated_at = now()
{page_rows}
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') THEN true ELSE false END;
