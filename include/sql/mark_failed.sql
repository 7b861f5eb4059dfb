-- Genesys answered that it did not apply the request (or nothing was sent): the contacts are certainly not
-- sent, stay claimed by the run, and a retry of the task or a later run sends them.
-- The page rows: one primary-key probe per id, then the row by its ctid (mark_page_rows.sql, mark_plan.sql).
UPDATE dispatch_ledger AS l
SET status = 'failed', last_error = %(error)s, updated_at = now(), attempts = l.attempts + 1, sending_at = NULL
{page_rows}
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') THEN true ELSE false END;
