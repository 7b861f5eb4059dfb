-- genesys-dialer requeue: a campaign's contacts skipped for one (data) reason are claimed again by its next run.
UPDATE dispatch_ledger
SET requeued_at = now()
WHERE campaign_id = %(campaign_id)s AND status = 'skipped' AND skip_reason = %(reason)s;
