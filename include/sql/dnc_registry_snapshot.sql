-- The newest national-registry snapshot loaded into dnc_numbers (NULL: none is used).
SELECT max(registry_snapshot_date) FROM dnc_numbers WHERE registry_snapshot_date IS NOT NULL;
