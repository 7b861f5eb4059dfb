-- Committed before a request is sent: its contacts are in doubt until its outcome is marked. Only rows this
-- try still owns (fence) are marked, and the caller sends exactly the rows returned. Renews the heartbeat.
UPDATE dispatch_ledger
SET sending_at = now(), heartbeat_at = now(), updated_at = now()
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND fence = %(fence)s
  AND status IN ('claimed', 'failed') AND sending_at IS NULL
RETURNING contact_id;
