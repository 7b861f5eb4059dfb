-- The dialer's session limits, unless the connection (extra "options": "-c statement_timeout=30s ...") or the
-- server (role or database settings) already sets them: a statement that runs or waits for a lock longer than
-- statement_timeout fails instead of hanging a task, and a session left idle inside a transaction (a task
-- killed or hung between two statements) is ended by the server after idle_in_transaction_session_timeout,
-- which rolls it back and releases its locks (the campaign's claim lock among them).
SELECT
    CASE WHEN current_setting('statement_timeout') = '0'
         THEN set_config('statement_timeout', %(statement_timeout)s, false)
         ELSE current_setting('statement_timeout') END AS statement_timeout,
    CASE WHEN current_setting('idle_in_transaction_session_timeout') = '0'
         THEN set_config('idle_in_transaction_session_timeout', %(idle_in_transaction_timeout)s, false)
         ELSE current_setting('idle_in_transaction_session_timeout') END AS idle_in_transaction_session_timeout,
    -- So the dialer's sessions can be told apart in pg_stat_activity.
    CASE WHEN current_setting('application_name') = ''
         THEN set_config('application_name', %(application_name)s, false)
         ELSE current_setting('application_name') END AS application_name;
