-- The request's outcome is unknown (timeout, dropped connection): pending, and sending_at stays set, so no
-- one sends these contacts again before the contact list is read back.
-- The page rows: one primary-key probe per id, then the row by its ctid (mark_page_rows.sql, mark_plan.sql).
UPDATE dispatch_ledger AS l
SET status = 'failed', last_error = %(error)s, updated_at = now(), attempts = l.attempts + 1
{page_rows}
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') AND l.sending_at IS NOT NULL THEN true ELSE false END;
