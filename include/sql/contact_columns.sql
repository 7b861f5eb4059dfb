-- The columns of the contacts table the pipeline reads (to name a configured column that does not exist).
SELECT column_name
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'contacts';
