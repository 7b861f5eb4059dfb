-- Record how far the normalization of a region walked (in the transaction of the chunk it normalized).
INSERT INTO contact_phones_progress AS g (
    region, resume_updated_at, resume_id, caught_up, walk_started_at, updated_at
) VALUES (
    %(region)s, %(resume_updated_at)s, %(resume_id)s, %(caught_up)s, %(walk_started_at)s, now()
)
ON CONFLICT (region) DO UPDATE SET
    resume_updated_at = EXCLUDED.resume_updated_at,
    resume_id = EXCLUDED.resume_id,
    caught_up = EXCLUDED.caught_up,
    walk_started_at = EXCLUDED.walk_started_at,
    updated_at = now();
