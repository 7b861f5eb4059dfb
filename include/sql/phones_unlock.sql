-- Release phones_lock.sql.
SELECT pg_advisory_unlock(hashtextextended('genesys_dialer:phones:' || %(region)s, 0));
