-- The distinct normalized status values of contacts, by a loose index scan of contacts_norm_status_id_idx
-- (one index probe per value, not a scan of the table).
WITH RECURSIVE s AS (
    (SELECT genesys_dialer_norm(status) AS value FROM contacts ORDER BY 1 LIMIT 1)
    UNION ALL
    SELECT (
        SELECT genesys_dialer_norm(c.status) FROM contacts c
        WHERE genesys_dialer_norm(c.status) > s.value
        ORDER BY 1 LIMIT 1
    )
    FROM s
    WHERE s.value IS NOT NULL
)
SELECT value FROM s WHERE value IS NOT NULL;
