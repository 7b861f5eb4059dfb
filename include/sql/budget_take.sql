-- Take one request's token from an OAuth client's budget (genesys/budget.py): reserve the client's next free
-- slot, one interval (60 / requests per minute seconds) after the previous one, and return how many seconds
-- from now it starts (<= 0: at once), and the slot itself (epoch seconds). One statement, one row lock: every process on every machine that shares
-- the database queues on the same row, in order, so the client's requests leave spaced at its rate whoever
-- sends them. A slot never starts in the past (no burst after an idle spell); a reservation whose request is
-- never sent is simply lost capacity, never an excess. The database's clock decides, not the workers'.
INSERT INTO genesys_rate_budget AS b (client_key, tat, requests_per_minute, updated_at)
VALUES (%(client_key)s, extract(epoch FROM clock_timestamp()) + %(interval)s, %(requests_per_minute)s, now())
ON CONFLICT (client_key) DO UPDATE
SET tat = greatest(b.tat, extract(epoch FROM clock_timestamp())) + %(interval)s,
    requests_per_minute = excluded.requests_per_minute,
    updated_at = now()
RETURNING b.tat - %(interval)s AS slot, b.tat - %(interval)s - extract(epoch FROM clock_timestamp()) AS wait_seconds;
