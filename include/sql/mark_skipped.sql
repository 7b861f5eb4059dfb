-- The page rows: one primary-key probe per id, then the row by its ctid (mark_page_rows.sql, mark_plan.sql).
UPDATE dispatch_ledger AS l
SET status = 'skipped', skip_reason = %(reason)s, updated_at = now(), sending_at = NULL
{page_rows}
  AND CASE WHEN l.fence = %(fence)s AND l.status IN ('claimed', 'failed') THEN true ELSE false END;
