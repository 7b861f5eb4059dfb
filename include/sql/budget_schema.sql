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
