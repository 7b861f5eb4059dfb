-- How many times a breaker has opened (0: never), read before its Variable and before each request that trusts a
-- closed reading of it (genesys/breaker.py). Always one row, so that a missing table fails as a missing table.
SELECT coalesce((SELECT openings FROM genesys_breaker_openings WHERE breaker = %(breaker)s), 0);
