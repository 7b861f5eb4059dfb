-- The campaign's contacts that may be in Genesys (every one that was in a segment or attempted: a POST whose
-- answer was lost may have stored it) and whose eligibility may have changed since the last complete check
-- (%(since)s; '-infinity' for a full check): their contacts row changed or is gone, their number entered
-- dnc_numbers, or a contact that carries the same number changed (it may have opted out). One set-based pass
-- over the campaign's ledger; withdraw_reason.sql then decides for these few only. A temporary table, kept
-- across the page transactions of the withdrawal (drop_withdraw_scope.sql removes it).
CREATE TEMPORARY TABLE withdraw_scope AS
SELECT l.contact_id
FROM dispatch_ledger l
LEFT JOIN contacts c ON c.id = l.contact_id
-- the number Genesys holds; rows sent before the ledger recorded it: the contact's number now
CROSS JOIN LATERAL (SELECT coalesce(l.phone_e164, (
    SELECT p.e164 FROM contact_phones p WHERE p.contact_id = l.contact_id AND p.region = %(phone_region)s
)) AS number) AS x
WHERE l.campaign_id = %(campaign_id)s
  AND l.status <> 'withdrawn' AND (l.segment_index >= 0 OR l.attempts > 0)
  AND (
      c.id IS NULL
      OR c.updated_at >= %(since)s::timestamptz
      OR x.number IN (SELECT d.phone_e164 FROM dnc_numbers d WHERE d.added_at >= %(since)s::timestamptz)
      OR x.number IN (
          SELECT o.e164
          FROM contacts oc
          JOIN contact_phones o ON o.contact_id = oc.id
          WHERE oc.updated_at >= %(since)s::timestamptz AND o.e164 IS NOT NULL
      )
  );
