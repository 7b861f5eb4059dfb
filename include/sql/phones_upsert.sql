-- Write normalized numbers (parallel arrays, one element per contact) for one region.
INSERT INTO contact_phones AS p (
    contact_id, region, e164, problem, number_type, number_region, time_zone, source_updated_at, normalized_at
)
SELECT u.contact_id, %(region)s, u.e164, u.problem, u.number_type, u.number_region, u.time_zone,
       u.source_updated_at, now()
FROM unnest(
    %(contact_ids)s::bigint[], %(e164)s::text[], %(problems)s::text[], %(number_types)s::text[],
    %(number_regions)s::text[], %(time_zones)s::text[], %(source_updated_at)s::timestamptz[]
) AS u(contact_id, e164, problem, number_type, number_region, time_zone, source_updated_at)
ON CONFLICT (contact_id, region) DO UPDATE SET
    e164 = EXCLUDED.e164, problem = EXCLUDED.problem, number_type = EXCLUDED.number_type,
    number_region = EXCLUDED.number_region, time_zone = EXCLUDED.time_zone,
    source_updated_at = EXCLUDED.source_updated_at, normalized_at = now();
