-- A withdrawal check completed: the next one looks only at what changed since it started (withdraw_scope.sql).
INSERT INTO withdrawal_checks AS g (campaign_id, started_at, rules, checked_at)
VALUES (%(campaign_id)s, %(started_at)s, %(rules)s, now())
ON CONFLICT (campaign_id) DO UPDATE SET started_at = EXCLUDED.started_at, rules = EXCLUDED.rules, checked_at = now();
