-- Genesys holds the contacts: it answered 2xx for their request, or a read-back found them.
-- The page rows: one primary-key probe per id, then the row by its ctid (mark_page_rows.sql, mark_plan.sql).
UPDATE dispatch_ledger AS l
SET status = 'dispatched', dispatched_at = now(), updated_at = now(), attempts = l.attempts + 1,
    last_error = NULL, sending_at = NULL
{page_rows}
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') THEN true ELSE false END;
