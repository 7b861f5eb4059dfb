-- The rows a mark (mark_*.sql, clear_doubt.sql) updates, in place of its page_rows line (ledger/claims.mark_sql): each
-- id of the typed list probed by its full primary key in a subquery lateral to it (OFFSET 0: never flattened),
-- then the row updated by the ctid that probe found. The mark adds its row conditions as one CASE. Why this shape:
-- mark_plan.sql.
FROM unnest(%(contact_ids)s::bigint[]) AS u(contact_id)
CROSS JOIN LATERAL (
    SELECT d.ctid AS row_ctid FROM dispatch_ledger AS d
    WHERE d.campaign_id = %(campaign_id)s AND d.contact_id = u.contact_id
    OFFSET 0
) AS k
WHERE l.ctid = k.row_ctid
