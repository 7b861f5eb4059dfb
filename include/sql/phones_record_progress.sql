-- Record how far the normalization of a region walked (in the transaction of the chunk it normalized).
INSERT INTO contact_phones_progress AS g (
    region, resume_updated_at, resume_id, furthest_updated_at, caught_up, updated_at
) VALUES (
    %(region)s, %(resume_updated_at)s, %(resume_id)s, %(resume_updated_at)s, %(caught_up)s, now()
)
ON CONFLICT (region) DO UPDATE SET
    resume_updated_at = EXCLUDED.resume_updated_at,
    resume_id = EXCLUDED.resume_id,
    furthest_updated_at = greatest(g.furthest_updated_at, EXCLUDED.furthest_updated_at),
    caught_up = EXCLUDED.caught_up,
    updated_at = now();
