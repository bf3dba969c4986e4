-- Keeping watch: the alerts' memory of what is already alerted, the audience's questions, and each
-- day's summary of them.

-- One row per alert condition that is currently raised (its key names the condition and what it is
-- about, e.g. `check_failed:2025-09-21:segments_no_duplicates_check`). A condition alerts when its row
-- is inserted and says "cleared" when the row is deleted, so a condition alerts once however many
-- sensor ticks see it, and the memory survives a daemon restart.
CREATE TABLE alert_state (
    alert_key       text PRIMARY KEY,
    kind            text NOT NULL,
    summary         text NOT NULL,
    raised_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per search or answer request of `chaffee serve`. No address or other personal data: the
-- client is at most a hash salted with a secret that changes every UTC day, so the same visitor
-- cannot be followed from one day to the next. Kept for CHAFFEE_QUESTION_LOG_DAYS days.
CREATE TABLE question_log (
    question_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asked_at            timestamptz NOT NULL DEFAULT now(),
    question            text NOT NULL,
    mode                text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('search', 'answer')),
    published_from      date,
    published_to        date,
    hits                integer NOT NULL CHECK (hits >= 0),
    best_similarity     real,
    nothing_relevant    boolean NOT NULL,
    latency_ms          real NOT NULL CHECK (latency_ms >= 0),
    answer_cost_usd     numeric(12, 6),
    answer_cached       boolean,
    client_hash         text
);
-- The salt of each UTC day's client hashes, shared by every server process and deleted once its day
-- is over, so a hash can no longer be recomputed from an address.
CREATE TABLE question_log_salts (
    day     date PRIMARY KEY,
    salt    bytea NOT NULL
);
CREATE INDEX question_log_day_idx ON question_log (((asked_at AT TIME ZONE 'UTC')::date));

-- The daily summary the `asked_questions_summary` asset writes: per UTC day, one row per group of
-- near-duplicate questions (grouped by their embeddings), with how often it was asked and how often
-- nothing in the library answered it. Rewritten whole for its day.
CREATE TABLE question_summaries (
    day                 date NOT NULL,
    rank                integer NOT NULL,
    question            text NOT NULL,
    variants            text[] NOT NULL,
    times_asked         integer NOT NULL CHECK (times_asked > 0),
    times_unanswered    integer NOT NULL CHECK (times_unanswered >= 0),
    best_similarity     real,
    PRIMARY KEY (day, rank)
);

-- Consumers' view of the questions: one row per question asked.
CREATE VIEW asked_questions AS
SELECT asked_at, question, mode, kind, published_from, published_to, hits, best_similarity,
       nothing_relevant, latency_ms, answer_cost_usd, answer_cached
FROM question_log;

-- Consumers' view of the daily summary: each day's groups, most asked first.
CREATE VIEW asked_questions_daily AS
SELECT day, rank, question, times_asked, times_unanswered, best_similarity, variants
FROM question_summaries;
