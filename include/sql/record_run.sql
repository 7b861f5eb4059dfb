INSERT INTO run_log (
    campaign_id, run_id, campaign_key, run_type, dry_run, data_interval_start, data_interval_end, outcome,
    claimed, dispatched, skipped, failed, pending, report, started_at, finished_at
) VALUES (
    %(campaign_id)s, %(run_id)s, %(campaign_key)s, %(run_type)s, %(dry_run)s, %(data_interval_start)s,
    %(data_interval_end)s, %(outcome)s, %(claimed)s, %(dispatched)s, %(skipped)s, %(failed)s, %(pending)s,
    %(report)s::jsonb, %(started_at)s, now()
)
ON CONFLICT (campaign_id, run_id) DO UPDATE SET
    outcome = EXCLUDED.outcome, claimed = EXCLUDED.claimed, dispatched = EXCLUDED.dispatched,
    skipped = EXCLUDED.skipped, failed = EXCLUDED.failed, pending = EXCLUDED.pending,
    report = EXCLUDED.report, dry_run = EXCLUDED.dry_run, finished_at = now();
