-- A breaker opened: count it, after its Variable was written, so that every task trusting an earlier closed
-- reading of it reads the Variable again before its next request (genesys/breaker.py).
INSERT INTO genesys_breaker_openings AS o (breaker, openings, opened_at)
VALUES (%(breaker)s, 1, now())
ON CONFLICT (breaker) DO UPDATE SET openings = o.openings + 1, opened_at = now()
RETURNING o.openings;
