-- Adopt the undelivered claims of other runs whose lease has expired (a run that failed and was never
-- cleared must not lose them): neither claimed nor heartbeated (by a segment task working them) within
-- lease_minutes. The rows are locked, and the lease is checked again on the locked row version, so a claim
-- whose owner renewed its heartbeat meanwhile is not taken, and two adopters never take one row (SKIP LOCKED
-- leaves a row being adopted or marked to the other). The new fence means the previous owner can no longer
-- mark or send these rows. Rows in doubt (sending_at set) stay in doubt: the adopting segment reads the
-- contact list back before it sends any of them. Read through dispatch_ledger_undelivered_idx: only the
-- campaign's undelivered claims older than the lease, not its whole ledger. The order is the ids' but not the
-- primary key's (+ 0): with fresh statistics (many old dispatched rows, a few percent undelivered) the planner
-- otherwise walks the campaign's rows in primary-key order to fill the LIMIT early, and finds none when none has
-- expired (measured: 888,000 rows, 0.44 s at 1M ledger rows; it grows with the ledger). The expired claims are
-- few; sorting them costs nothing.
WITH candidates AS (
    SELECT l.contact_id
    FROM dispatch_ledger l
    JOIN contacts c ON c.id = l.contact_id
    WHERE l.campaign_id = %(campaign_id)s
      AND c.created_at < %(created_before)s
      AND l.status IN ('claimed', 'failed')
      AND l.run_id <> %(run_id)s
      AND l.claimed_at < now() - %(lease_minutes)s * interval '1 minute'  -- implied; bounds the index range
      AND greatest(l.claimed_at, l.heartbeat_at) < now() - %(lease_minutes)s * interval '1 minute'
    ORDER BY l.contact_id + 0  -- not the primary key's order: see above
    LIMIT %(batch_size)s
    FOR UPDATE OF l SKIP LOCKED
),
positioned AS (
    SELECT contact_id, row_number() OVER (ORDER BY contact_id) - 1 AS position FROM candidates
)
UPDATE dispatch_ledger l
SET run_id = %(run_id)s,
    campaign_key = %(campaign_key)s,
    segment_index = (p.position / %(segment_size)s)::int,
    fence = %(fence)s,
    claimed_at = now(),
    heartbeat_at = NULL,
    updated_at = now()
FROM positioned p
WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = p.contact_id
RETURNING l.contact_id;
