-- The next chunk of contacts rows in (updated_at, id) order after the cursor (contacts_updated_at_id_idx), each
-- with whether its normalized number for the region is missing or older than the row (only those are parsed).
SELECT c.id,
       c.phone_number,
       c.updated_at,
       p.source_updated_at IS DISTINCT FROM c.updated_at AS stale
FROM contacts c
LEFT JOIN contact_phones p ON p.contact_id = c.id AND p.region = %(region)s
WHERE (c.updated_at, c.id) > (%(after_updated_at)s::timestamptz, %(after_id)s::bigint)
ORDER BY c.updated_at, c.id
LIMIT %(limit)s;
