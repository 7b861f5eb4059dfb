-- The claim's late path, kept in a temporary table for the rest of the claim's transaction: contacts updated
-- since the window's start (claim_windows.since: a look-back before the previous claim began, or earlier while a
-- contact found there is still unresolved) that the marks cannot see, read through contacts_updated_at_id_idx
-- (id <= window_top is checked in the index, so contacts loaded above every mark cost no heap read):
-- * not in the ledger, of a scanned status value, at or below that value's mark: its status became callable
--   after the keyset had passed it, or it was committed after a claim's snapshot with an id below the mark;
-- * a retryable skip whose contact changed since it was recorded (claimed again as source 1).
-- claim_candidates.sql takes them; claim_window_advance.sql moves the window only past what is resolved.
CREATE TEMPORARY TABLE claim_window ON COMMIT DROP AS
SELECT c.id,
       c.updated_at,
       c.created_at < %(created_before)s AS in_time,
       genesys_dialer_norm(c.status)     AS status,
       l.contact_id IS NOT NULL          AS in_ledger
FROM contacts c
LEFT JOIN unnest(%(mark_statuses)s::text[], %(mark_ids)s::bigint[]) AS m(status, after_id)
    ON m.status = genesys_dialer_norm(c.status)
LEFT JOIN dispatch_ledger l ON l.campaign_id = %(campaign_id)s AND l.contact_id = c.id
WHERE c.updated_at >= %(late_since)s::timestamptz
  AND c.id <= %(window_top)s
  AND (
      (l.contact_id IS NULL AND c.id <= m.after_id)
      OR (l.status = 'skipped' AND l.skip_reason = ANY(%(retry_reasons)s) AND c.updated_at > l.updated_at)
  );
