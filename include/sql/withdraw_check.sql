-- When the campaign's last complete withdrawal check started and under which rules (NULLs: never), and the
-- database's time: this check's start.
SELECT g.started_at, g.rules, now()
FROM (SELECT 1) AS one
LEFT JOIN withdrawal_checks g ON g.campaign_id = %(campaign_id)s;
