-- Answers written by a chat model for `chaffee serve`: the ledger of every paid call (the daily
-- answer budget, kept apart from speech recognition's `asr_spend`) and the answers themselves,
-- which double as a cache: the same question asked again within a day is served from here.

-- One row per chat call. A call reserves its estimate ('reserved') before it is sent and is
-- settled to what the model reported ('settled'); a call whose outcome is unknown (a timeout: the
-- model may have billed it) keeps its estimate ('uncertain'). A call the model refused is deleted.
CREATE TABLE answer_spend (
    spend_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    spent_at        timestamptz NOT NULL DEFAULT now(),
    model           text NOT NULL,
    question_key    text NOT NULL,
    status          text NOT NULL DEFAULT 'reserved' CHECK (status IN ('reserved', 'settled', 'uncertain')),
    input_tokens    integer CHECK (input_tokens IS NULL OR input_tokens >= 0),
    output_tokens   integer CHECK (output_tokens IS NULL OR output_tokens >= 0),
    usd             numeric(12, 6) NOT NULL CHECK (usd >= 0)
);
CREATE INDEX answer_spend_day_idx ON answer_spend (((spent_at AT TIME ZONE 'UTC')::date));

-- Every answer written. `question_key` hashes the normalised question with everything that shapes
-- the answer (ranking mode, date filters, chat model, embedding model, passage count).
CREATE TABLE answers (
    answer_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question_key    text NOT NULL,
    question        text NOT NULL,
    model           text NOT NULL,
    answer          text NOT NULL,
    answered        boolean NOT NULL,
    citations       jsonb NOT NULL CHECK (jsonb_typeof(citations) = 'array'),
    passages        jsonb NOT NULL CHECK (jsonb_typeof(passages) = 'array'),
    input_tokens    integer,
    output_tokens   integer,
    cost_usd        numeric(12, 6) NOT NULL CHECK (cost_usd >= 0),
    spend_id        bigint REFERENCES answer_spend (spend_id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX answers_question_key_idx ON answers (question_key, created_at DESC);

-- Answer spend per UTC day, for SQL consumers and operators.
CREATE VIEW answer_spend_daily AS
SELECT (spent_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS calls,
       count(*) FILTER (WHERE status <> 'settled') AS unsettled_calls,
       sum(usd) AS usd
FROM answer_spend
GROUP BY 1;
