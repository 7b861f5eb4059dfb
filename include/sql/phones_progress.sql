-- Where the normalization of a region stands (no row: it never ran).
SELECT resume_updated_at, resume_id, furthest_updated_at, caught_up
FROM contact_phones_progress
WHERE region = %(region)s;
