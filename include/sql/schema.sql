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

-- How the pipeline compares the user's flag columns (status, suppression_status, consent): trimmed and
-- case-insensitively, NULL as '', so ' DO_NOT_CALL ' and 'Do_Not_Call' are 'do_not_call'. Trimmed of every
-- Unicode space (Python's str.isspace: the no-break, ideographic and typographic spaces too) and of the invisible
-- characters an export leaves behind (zero-width spaces and joiners, the byte-order mark): a do-not-call flag
-- padded with any of them still suppresses. config.FLAG_PADDING is the same set, for the config's values. One
-- immutable function, so the expression index below and every query agree on it: when its body changes, the
-- index is rebuilt in the same transaction (its keys were computed by the old body).
DO $norm$
DECLARE
    body CONSTANT text := $body$ SELECT lower(btrim(coalesce(value, ''), U&'\0009\000A\000B\000C\000D\001C\001D\001E\001F\0020\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\2028\2029\202F\205F\3000\180E\200B\200C\200D\2060\FEFF')) $body$;
BEGIN
    -- This schema's function (the one the search path finds), not a namesake in another schema.
    IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE oid = to_regprocedure('genesys_dialer_norm(text)') AND prosrc = body)
    THEN
        EXECUTE format('CREATE OR REPLACE FUNCTION genesys_dialer_norm(value text) RETURNS text '
                       'LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L', body);
        IF to_regclass('contacts_norm_status_id_idx') IS NOT NULL THEN
            REINDEX INDEX contacts_norm_status_id_idx;
        END IF;
    END IF;
END
$norm$;
-- How suppression values are compared (opt_out_reason.sql): as genesys_dialer_norm, then without punctuation and
-- padding characters anywhere in the value (config.flag_key: the same characters), so 'Do Not Call',
-- 'do-not-call', 'DO.NOT.CALL' and 'do' || U&'\200B' || 'not_call' are 'donotcall', as the config's 'do_not_call'
-- is. A suppression flag written another way still suppresses. The other flags need no such care: a status or
-- consent value the config does not know already holds the contact back. No index uses it. A regular expression of
-- those characters, each written out (no locale-dependent class): translate() over this many characters took 2.0 s
-- for a million values, this 0.9 to 1.1 s, genesys_dialer_norm alone 0.45 s.
CREATE OR REPLACE FUNCTION genesys_dialer_flag_key(value text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $body$ SELECT regexp_replace(genesys_dialer_norm(value), U&'[!0009!000A!000B!000C!000D!001C!001D!001E!001F!0020!0085!00A0!1680!2000!2001!2002!2003!2004!2005!2006!2007!2008!2009!200A!2028!2029!202F!205F!3000!180E!200B!200C!200D!2060!FEFF!0021!0022!0023!0024!0025!0026!0027!0028!0029!002A!002B!002C\!002D!002E!002F!003A!003B!003C!003D!003E!003F!0040\!005B\!005C\!005D\!005E!005F!0060!007B!007C!007D!007E!2018!2019!201C!201D!00B7!2010!2011!2012!2013!2014!2015!2212]' UESCAPE '!', '', 'g') $body$;
-- Indexes this project adds to the user's contacts table and the trigger below (nothing else is added to
-- it): the claim scans each
-- status value in id order, and phone normalization follows rows whose updated_at moved.
CREATE INDEX IF NOT EXISTS contacts_norm_status_id_idx ON contacts (genesys_dialer_norm(status), id);
CREATE INDEX IF NOT EXISTS contacts_updated_at_id_idx ON contacts (updated_at, id);
-- The phone normalization, the withdrawal of opt-outs, the claim's late path and the retry of skips all follow
-- rows whose updated_at moved: it must be when the row last changed in this database. A row that changed but
-- kept its updated_at (a hand-written `SET status = 'active'`) or was given a time in the past (a loader copying
-- the CRM's own modification time, or a row imported "as of" last week) would go unseen: a number changed that
-- way could dodge the suppression by number, and an opt-out synced that way would never be withdrawn; a time in
-- the future would keep the row in every window. So every insert and every change sets updated_at to now() (the
-- transaction's start), whatever the writer wrote there. An UPDATE that changes nothing leaves it alone.
CREATE OR REPLACE FUNCTION genesys_dialer_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER contacts_touch_updated_at
    BEFORE INSERT OR UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION genesys_dialer_touch_updated_at();

-- Each contact's number normalized once (libphonenumber, in Python) for one default region: its E.164 form or
-- the problem, the number's type, region and time zone, and the contacts row's updated_at it was computed
-- from (a row whose updated_at moved is normalized again). Every contact is normalized, whatever its status:
-- the numbers of suppressed contacts are what suppression by number compares with. No foreign key: the
-- contacts table stays the user's.
CREATE TABLE IF NOT EXISTS contact_phones (
    contact_id        BIGINT      NOT NULL,
    region            TEXT        NOT NULL,
    e164              TEXT,
    problem           TEXT        CHECK (problem IN ('missing_phone', 'invalid_phone')),
    number_type       TEXT,
    number_region     TEXT,
    time_zone         TEXT,
    source_updated_at TIMESTAMPTZ NOT NULL,
    normalized_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, region),
    CHECK ((e164 IS NULL) <> (problem IS NULL))
);
-- Suppression and duplicates are checked by number.
CREATE INDEX IF NOT EXISTS contact_phones_e164_idx ON contact_phones (e164) WHERE e164 IS NOT NULL;
-- How far the normalization of each region has walked contacts in (updated_at, id) order: where an interrupted
-- walk resumes, and when the last walk that caught up started (the next one starts again a look-back before
-- that, for rows committed late with an older updated_at).
CREATE TABLE IF NOT EXISTS contact_phones_progress (
    region            TEXT        PRIMARY KEY,
    resume_updated_at TIMESTAMPTZ NOT NULL,
    resume_id         BIGINT      NOT NULL,
    caught_up         BOOLEAN     NOT NULL,
    walk_started_at   TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The internal do-not-call table: numbers never sent through any contact, whatever their contacts say.
-- E.164 only (genesys-dialer dnc-import normalizes a file); source e.g. 'internal', 'national_registry', with
-- the date the registry snapshot was taken (the FTC allows at most 31 days).
CREATE TABLE IF NOT EXISTS dnc_numbers (
    phone_e164             TEXT        NOT NULL CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    source                 TEXT        NOT NULL DEFAULT 'internal',
    registry_snapshot_date DATE,
    added_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (phone_e164, source)
);
-- added_at is when the number entered this table: the withdrawal's incremental check looks for numbers added since
-- its last check. A loader writing an older time (the registry's own date, say) would leave delivered contacts
-- with that number unwithdrawn, so an insert (or a number changed in place) gets now(), whatever it wrote there.
CREATE OR REPLACE FUNCTION genesys_dialer_touch_added_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.phone_e164 IS DISTINCT FROM OLD.phone_e164 THEN
        NEW.added_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER dnc_numbers_touch_added_at
    BEFORE INSERT OR UPDATE ON dnc_numbers
    FOR EACH ROW EXECUTE FUNCTION genesys_dialer_touch_added_at();
CREATE INDEX IF NOT EXISTS dnc_numbers_snapshot_idx ON dnc_numbers (registry_snapshot_date)
    WHERE registry_snapshot_date IS NOT NULL;

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

-- Compliance (docs/compliance.md): the number a contact was claimed and sent with; when a skip was re-queued by
-- hand; and each withdrawal of a delivered contact that opted out: when, why, by which run, and the contextId
-- of the DELETE and of the DNC list PATCH.
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS phone_e164 TEXT;
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS requeued_at TIMESTAMPTZ;
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS withdrawn_at TIMESTAMPTZ;
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS withdraw_reason TEXT;
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS withdrawn_by_run TEXT;
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS withdraw_context_id TEXT;
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS withdraw_dnc_context_id TEXT;
-- 'withdrawn' joins the statuses. The check is replaced only while it lacks it: re-validating it scans the
-- ledger under an exclusive lock, which an idempotent re-apply should not do every time.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'dispatch_ledger'::regclass AND conname = 'dispatch_ledger_status_check'
          AND pg_get_constraintdef(oid) LIKE '%withdrawn%'
    ) THEN
        ALTER TABLE dispatch_ledger DROP CONSTRAINT IF EXISTS dispatch_ledger_status_check;
        ALTER TABLE dispatch_ledger ADD CONSTRAINT dispatch_ledger_status_check
            CHECK (status IN ('claimed', 'dispatched', 'skipped', 'failed', 'withdrawn'));
    END IF;
END
$$;
-- When each campaign's withdrawal last checked the contacts that may be in Genesys, and under which eligibility
-- rules (a fingerprint): the next check looks only at what changed since, unless the rules changed.
CREATE TABLE IF NOT EXISTS withdrawal_checks (
    campaign_id TEXT        PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    rules       TEXT        NOT NULL,
    checked_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One contact per number and campaign: is this number already claimed or delivered for the campaign?
CREATE INDEX IF NOT EXISTS dispatch_ledger_phone_idx
    ON dispatch_ledger (campaign_id, phone_e164) WHERE status IN ('claimed', 'failed', 'dispatched');
-- Skips a later run retries (their contact changed, or they were re-queued).
CREATE INDEX IF NOT EXISTS dispatch_ledger_skipped_idx
    ON dispatch_ledger (campaign_id, contact_id) WHERE status = 'skipped';

-- Exactly-once bookkeeping (docs/resilience.md):
-- * fence: who may mark a row. Every claim, adoption and segment retry takes a new value from
--   dispatch_fence_seq (a segment's first try keeps its claim's) and every mark requires it, so a run or try
--   that lost a row (adopted by another run, or superseded by a newer try) can no longer mark or send it.
-- * heartbeat_at: renewed by the segment task working the row; a claim is adopted only when both its
--   claimed_at and its heartbeat are older than the lease.
-- * sending_at: set (and committed) before a request carrying the contact is sent, cleared when its outcome
--   is known. A row with sending_at set is "in doubt": Genesys may hold the contact. It is never sent again
--   before its list is read back.
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS fence BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS heartbeat_at TIMESTAMPTZ;
ALTER TABLE dispatch_ledger ADD COLUMN IF NOT EXISTS sending_at TIMESTAMPTZ;
CREATE SEQUENCE IF NOT EXISTS dispatch_fence_seq;

-- Every Genesys request a run's tasks made (retried, failed and unanswered ones included), written as they
-- go: the run report counts traffic from here. Delete old rows by sent_at as you see fit.
CREATE TABLE IF NOT EXISTS request_log (
    id          BIGSERIAL   PRIMARY KEY,
    campaign_id TEXT        NOT NULL,
    run_id      TEXT        NOT NULL,
    task_id     TEXT        NOT NULL,
    map_index   INTEGER     NOT NULL DEFAULT -1,
    try_number  INTEGER     NOT NULL,
    endpoint    TEXT        NOT NULL,
    method      TEXT        NOT NULL,
    status      INTEGER,                -- NULL: no HTTP answer (timeout, dropped connection)
    failure     TEXT,                   -- 'timeout' or 'connection' when there was no answer
    attempt     INTEGER     NOT NULL,   -- 1: the call's first attempt; more: a retry inside the hook
    items       INTEGER     NOT NULL DEFAULT 0,  -- contacts (or ids) in the request body
    elapsed_ms  INTEGER     NOT NULL DEFAULT 0,
    sent_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS request_log_run_idx ON request_log (campaign_id, run_id);
CREATE INDEX IF NOT EXISTS request_log_sent_at_idx ON request_log (sent_at);

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

-- Where each campaign's claim resumes (claim_candidates.sql, docs/ledger.md): per normalized status value, the
-- highest contact id below which every contact of that value is in the ledger (claim_marks); and the start of
-- the late path's window over contacts_updated_at_id_idx, which finds what a mark cannot see (a contact whose
-- status became callable below the mark, a row committed late, a skip whose contact changed), with whether the
-- skips that changed before the first window was opened have all been retried (claim_windows).
CREATE TABLE IF NOT EXISTS claim_marks (
    campaign_id TEXT        NOT NULL,
    status      TEXT        NOT NULL,
    contact_id  BIGINT      NOT NULL,
    marked_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, status)
);
CREATE TABLE IF NOT EXISTS claim_windows (
    campaign_id     TEXT        PRIMARY KEY,
    since           TIMESTAMPTZ NOT NULL,
    skips_caught_up BOOLEAN     NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Skips re-queued by hand (genesys-dialer requeue): the claim reads only these, not every skip. The predicate
-- names no column the marks change (updated_at, sending_at...), so it costs them no HOT update.
CREATE INDEX IF NOT EXISTS dispatch_ledger_requeued_idx
    ON dispatch_ledger (campaign_id, contact_id) WHERE status = 'skipped' AND requeued_at IS NOT NULL;
