-- The claim's late-path window (claim_windows): since when updated contacts are looked at (NULL: no claim has
-- opened a window yet), whether the skips that changed before the window was opened have all been retried, and
-- the highest contact id in the campaign's ledger (nothing above it can be a retryable skip or below a mark).
SELECT w.since, coalesce(w.skips_caught_up, false),
       coalesce((SELECT max(l.contact_id) FROM dispatch_ledger l WHERE l.campaign_id = %(campaign_id)s), 0)
FROM (SELECT 1) AS one
LEFT JOIN claim_windows w ON w.campaign_id = %(campaign_id)s;
