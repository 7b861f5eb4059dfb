-- genesys-dialer dnc-import: numbers (E.164) of one source; a number already there gets the new snapshot date.
INSERT INTO dnc_numbers AS d (phone_e164, source, registry_snapshot_date)
SELECT n, %(source)s, %(snapshot_date)s::date FROM unnest(%(numbers)s::text[]) AS n
ON CONFLICT (phone_e164, source) DO UPDATE SET registry_snapshot_date = EXCLUDED.registry_snapshot_date;
