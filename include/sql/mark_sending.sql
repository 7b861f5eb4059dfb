-- Committed before a request is sent: its contacts are in doubt until its outcome is marked. Only rows this
-- try still owns (fence) are marked, and the caller sends exactly the rows returned. Renews the heartbeat.
-- The page rows: one primary-key probe per id, then the row by its ctid (mark_page_rows.sql, mark_plan.sql).
UPDATE dispatch_ledger AS l
SET sending_at = now(), heartbeat_at = now(), updated_at = now()
{page_rows}
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') AND l.sending_at IS NULL THEN true ELSE false END
RETURNING l.contact_id;
