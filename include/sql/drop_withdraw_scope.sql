-- Remove the temporary table of withdraw_scope.sql.
DROP TABLE IF EXISTS pg_temp.withdraw_scope;
