-- The shared request budget of each Genesys OAuth client (genesys/budget.py): one row per client, keyed by a
-- hash of the token URL's host and the client id (never the secret). tat is the bucket's "theoretical arrival
-- time" (GCRA): the epoch second from which the next request may go out. Created on first use by the budget
-- itself (IF NOT EXISTS), so the table needs no migration of its own.
CREATE TABLE IF NOT EXISTS genesys_rate_budget (
    client_key text PRIMARY KEY,
    tat double precision NOT NULL,
    requests_per_minute double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- How many times each circuit breaker has opened (genesys/breaker.py), mirrored from its Variable by the writer
-- that opened it. A task may trust a closed breaker it read for a second or two only while this count has not
-- moved since: one local read per request instead of a Variable read through the API server.
CREATE TABLE IF NOT EXISTS genesys_breaker_openings (
    breaker text PRIMARY KEY,
    openings bigint NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now()
);
