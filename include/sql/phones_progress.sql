-- Where the normalization of a region stands (NULLs: it never ran), and the database's time: this walk's start.
SELECT g.resume_updated_at, g.resume_id, g.caught_up, g.walk_started_at, now()
FROM (SELECT 1) AS one
LEFT JOIN contact_phones_progress g ON g.region = %(region)s;
