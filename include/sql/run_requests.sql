-- Every Genesys request one run's tasks made, in every try: what the run report counts.
SELECT count(*)                                                 AS requests,
       count(*) FILTER (WHERE attempt > 1)                      AS retries,
       count(*) FILTER (WHERE status = 429)                     AS throttled,
       count(*) FILTER (WHERE endpoint = 'token' AND status = 200) AS token_refreshes,
       count(*) FILTER (WHERE status IS NULL)                   AS unanswered,
       count(*) FILTER (WHERE status >= 400)                    AS errors,
       count(DISTINCT (task_id, map_index, try_number))         AS task_tries
FROM request_log
WHERE campaign_id = %(campaign_id)s AND run_id = %(run_id)s;
