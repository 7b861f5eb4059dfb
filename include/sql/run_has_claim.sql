-- Whether a run already holds a claim of its own: a cleared run that was live on an earlier try.
SELECT EXISTS (
    SELECT 1 FROM dispatch_ledger WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s
);
