-- Schema for the Genesys predictive-dialer feed. Idempotent: applying it again changes nothing and
-- never drops or rewrites a user's rows (CREATE ... IF NOT EXISTS, ADD COLUMN IF NOT EXISTS only).

-- One advisory lock (held to the end of the transaction) so two init containers or test sessions applying
-- the schema at once do not collide.
SELECT pg_advisory_xact_lock(hashtextextended('genesys_dialer:schema', 0));

-- The seed's tables. One contacts table can feed several campaigns: what went where lives in the ledger.
CREATE TABLE IF NOT EXISTS contacts (
    id                 BIGSERIAL PRIMARY KEY,
    phone_number       TEXT,
    status             TEXT        NOT NULL DEFAULT 'active',
    suppression_status TEXT        NOT NULL DEFAULT 'none',
    first_name         TEXT,
    last_name          TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The seed's recommended index: eligible contacts in keyset (id) order.
CREATE INDEX IF NOT EXISTS contacts_status_id_idx ON contacts (status, id);

CREATE TABLE IF NOT EXISTS dial_history (
    id          BIGSERIAL PRIMARY KEY,
    campaign_id TEXT        NOT NULL,
    contact_id  BIGINT,
    answered    BOOLEAN     NOT NULL,
    abandoned   BOOLEAN     NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The seed's recommended index: the answer-rate window of one campaign.
CREATE INDEX IF NOT EXISTS dial_history_campaign_id_created_at_idx ON dial_history (campaign_id, created_at);

-- The dispatch ledger: one row per (campaign, contact) ever claimed. The primary key is what makes a
-- contact impossible to claim twice for one campaign, whatever runs overlap.
CREATE TABLE IF NOT EXISTS dispatch_ledger (
    campaign_id        TEXT        NOT NULL,
    contact_id         BIGINT      NOT NULL,
    genesys_contact_id TEXT        NOT NULL,
    campaign_key       TEXT        NOT NULL,
    run_id             TEXT        NOT NULL,
    segment_index      INTEGER     NOT NULL,
    status             TEXT        NOT NULL DEFAULT 'claimed'
        CHECK (status IN ('claimed', 'dispatched', 'skipped', 'failed')),
    skip_reason        TEXT,
    attempts           INTEGER     NOT NULL DEFAULT 0,
    last_error         TEXT,
    claimed_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    dispatched_at      TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, contact_id)
);
-- A run's own claim, segment by segment (re-runs, segment tasks, the run report).
CREATE INDEX IF NOT EXISTS dispatch_ledger_run_segment_idx
    ON dispatch_ledger (campaign_id, run_id, segment_index, contact_id);
-- Undelivered claims that a later run adopts when their lease has expired.
CREATE INDEX IF NOT EXISTS dispatch_ledger_undelivered_idx
    ON dispatch_ledger (campaign_id, claimed_at) WHERE status IN ('claimed', 'failed');

-- What each run decided about pacing, so a backfill can rebuild the history.
CREATE TABLE IF NOT EXISTS pacing_decisions (
    campaign_id          TEXT        NOT NULL,
    run_id               TEXT        NOT NULL,
    campaign_key         TEXT        NOT NULL,
    window_start         TIMESTAMPTZ NOT NULL,
    window_end           TIMESTAMPTZ NOT NULL,
    attempts             BIGINT      NOT NULL,
    answers              BIGINT      NOT NULL,
    answer_rate          DOUBLE PRECISION NOT NULL,
    answer_rate_lower    DOUBLE PRECISION NOT NULL,
    answer_rate_upper    DOUBLE PRECISION NOT NULL,
    pacing_answer_rate   DOUBLE PRECISION NOT NULL,
    prior_weight         DOUBLE PRECISION NOT NULL,
    estimate_source      TEXT        NOT NULL,
    strategy             TEXT        NOT NULL,
    dial_ratio           DOUBLE PRECISION NOT NULL,
    max_calls_per_agent  DOUBLE PRECISION NOT NULL,
    outbound_line_count  INTEGER     NOT NULL,
    abandon_rate         DOUBLE PRECISION NOT NULL,
    details              JSONB       NOT NULL DEFAULT '{}'::jsonb,
    dry_run              BOOLEAN     NOT NULL,
    applied              BOOLEAN     NOT NULL DEFAULT false,
    decided_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, run_id)
);
CREATE INDEX IF NOT EXISTS pacing_decisions_window_idx ON pacing_decisions (campaign_id, window_end);

-- One row per DAG run: the run report, as written to the task log.
CREATE TABLE IF NOT EXISTS run_log (
    campaign_id         TEXT        NOT NULL,
    run_id              TEXT        NOT NULL,
    campaign_key        TEXT        NOT NULL,
    run_type            TEXT        NOT NULL,
    dry_run             BOOLEAN     NOT NULL,
    data_interval_start TIMESTAMPTZ,
    data_interval_end   TIMESTAMPTZ,
    outcome             TEXT        NOT NULL,
    claimed             INTEGER     NOT NULL DEFAULT 0,
    dispatched          INTEGER     NOT NULL DEFAULT 0,
    skipped             INTEGER     NOT NULL DEFAULT 0,
    failed              INTEGER     NOT NULL DEFAULT 0,
    pending             INTEGER     NOT NULL DEFAULT 0,
    report              JSONB       NOT NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, run_id)
);

-- What Genesys Cloud analytics reported per campaign and 15-minute bucket (pacing_source: genesys). Re-pulling
-- a bucket replaces it; an empty bucket is stored as zeros, so "nothing dialed" and "not pulled" stay apart;
-- as_of is the interval end of the run that pulled it (a bucket pulled an hour after it ended is settled).
CREATE TABLE IF NOT EXISTS campaign_outcomes (
    campaign_id     TEXT             NOT NULL,
    interval_start  TIMESTAMPTZ      NOT NULL,
    interval_end    TIMESTAMPTZ      NOT NULL,
    attempts        BIGINT           NOT NULL DEFAULT 0,
    connects        BIGINT           NOT NULL DEFAULT 0,
    abandons        BIGINT           NOT NULL DEFAULT 0,
    talk_count      BIGINT           NOT NULL DEFAULT 0,
    talk_seconds    DOUBLE PRECISION NOT NULL DEFAULT 0,
    talk_sq_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    acw_count       BIGINT           NOT NULL DEFAULT 0,
    acw_seconds     DOUBLE PRECISION NOT NULL DEFAULT 0,
    handle_count    BIGINT           NOT NULL DEFAULT 0,
    handle_seconds  DOUBLE PRECISION NOT NULL DEFAULT 0,
    idle_agents     INTEGER,  -- idle agents in the campaign stats read when this bucket was the newest
    as_of           TIMESTAMPTZ      NOT NULL,
    synced_at       TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, interval_start)
);

-- What Genesys kept of the pacing written (read back after the PATCH).
ALTER TABLE pacing_decisions ADD COLUMN IF NOT EXISTS kept JSONB;
