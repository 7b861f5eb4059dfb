INSERT INTO request_log (
    campaign_id, run_id, task_id, map_index, try_number, endpoint, method, status, failure, attempt, items,
    elapsed_ms
) VALUES (
    %(campaign_id)s, %(run_id)s, %(task_id)s, %(map_index)s, %(try_number)s, %(endpoint)s, %(method)s,
    %(status)s, %(failure)s, %(attempt)s, %(items)s, %(elapsed_ms)s
);
