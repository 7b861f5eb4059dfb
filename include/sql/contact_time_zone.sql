-- The contact's time zone from the configured column, when it holds an IANA zone name (a template).
CASE WHEN btrim({column}::text) = ANY(%(time_zones)s) THEN btrim({column}::text) END
