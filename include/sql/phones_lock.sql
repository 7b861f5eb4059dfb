-- One normalizer per region at a time, for the rest of the session (phones_unlock.sql releases it): campaigns
-- sharing a region wait, then find the numbers current instead of parsing them twice.
SELECT pg_advisory_lock(hashtextextended('genesys_dialer:phones:' || %(region)s, 0));
