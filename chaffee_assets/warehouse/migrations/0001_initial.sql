-- The warehouse: videos, their transcripts (current + history), retrieval segments, embeddings,
-- the ASR spend ledger, and the views SQL consumers read.

CREATE EXTENSION IF NOT EXISTS vector;

-- One row per video id, whatever source found it. The partition a video belongs to is derived
-- from its publish time (UTC), never stored separately, so the two cannot disagree.
CREATE TABLE videos (
    video_id        text PRIMARY KEY CHECK (video_id <> ''),
    source          text NOT NULL CHECK (source IN ('youtube', 'library')),
    title           text NOT NULL,
    description     text,
    published_at    timestamptz,
    partition_date  date GENERATED ALWAYS AS ((published_at AT TIME ZONE 'UTC')::date) STORED,
    duration_s      double precision CHECK (duration_s IS NULL OR duration_s >= 0),
    channel         text,
    channel_id      text,
    tags            text[] NOT NULL DEFAULT '{}',
    thumbnail_url   text,
    url             text NOT NULL,
    language        text,
    availability    text NOT NULL DEFAULT 'available'
                    CHECK (availability IN ('available', 'private', 'deleted', 'members_only', 'live', 'upcoming')),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX videos_partition_date_idx ON videos (partition_date);

-- What a channel listing returned. A flat listing has ids without publish dates; resolving a date
-- costs one request per video, so it is done once and remembered here.
CREATE TABLE channel_listing (
    video_id        text PRIMARY KEY CHECK (video_id <> ''),
    channel_url     text NOT NULL,
    title           text,
    published_at    timestamptz,
    listed_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolve_error   text
);
CREATE INDEX channel_listing_unresolved_idx ON channel_listing (listed_at) WHERE published_at IS NULL;
CREATE INDEX channel_listing_published_day_idx ON channel_listing (((published_at AT TIME ZONE 'UTC')::date));

-- Every transcript ever written for a video; exactly one is current.
CREATE TABLE transcripts (
    transcript_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    video_id        text NOT NULL REFERENCES videos (video_id) ON DELETE CASCADE,
    version         integer NOT NULL CHECK (version >= 1),
    is_current      boolean NOT NULL DEFAULT true,
    source          text NOT NULL
                    CHECK (source IN ('manual_captions', 'auto_captions', 'library_file', 'local_whisper', 'openai')),
    language        text,
    model           text,
    cues            jsonb NOT NULL CHECK (jsonb_typeof(cues) = 'array'),
    cue_count       integer GENERATED ALWAYS AS (jsonb_array_length(cues)) STORED,
    audio_seconds   double precision CHECK (audio_seconds IS NULL OR audio_seconds >= 0),
    cost_usd        numeric(10, 4) NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    fetched_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (video_id, version)
);
CREATE UNIQUE INDEX transcripts_one_current_per_video ON transcripts (video_id) WHERE is_current;

-- A video's latest outcome when no transcript could be written. Cleared when one is.
CREATE TABLE transcript_attempts (
    video_id        text PRIMARY KEY REFERENCES videos (video_id) ON DELETE CASCADE,
    failure_class   text NOT NULL
                    CHECK (failure_class IN ('blocked', 'no_captions', 'too_new', 'unavailable',
                                             'over_budget', 'engine_unavailable', 'error')),
    message         text NOT NULL,
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    retry_after     timestamptz,
    attempts        integer NOT NULL DEFAULT 1 CHECK (attempts >= 1)
);

-- Retrieval units cut from a video's current transcript. Rewritten per video in one transaction.
CREATE TABLE segments (
    segment_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    video_id        text NOT NULL REFERENCES videos (video_id) ON DELETE CASCADE,
    transcript_id   bigint NOT NULL REFERENCES transcripts (transcript_id) ON DELETE CASCADE,
    ordinal         integer NOT NULL CHECK (ordinal >= 0),
    start_s         double precision NOT NULL CHECK (start_s >= 0),
    end_s           double precision NOT NULL,
    text            text NOT NULL CHECK (text <> ''),
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    UNIQUE (video_id, ordinal),
    CHECK (end_s >= start_s)
);
CREATE INDEX segments_tsv_idx ON segments USING gin (tsv);
CREATE INDEX segments_transcript_idx ON segments (transcript_id);

-- Embedding models known to the warehouse. Each has its own HNSW index (a partial index on the
-- cast to its dimension), so a second model can be embedded beside the first.
CREATE TABLE embedding_models (
    model           text PRIMARY KEY CHECK (model <> ''),
    dimensions      integer NOT NULL CHECK (dimensions BETWEEN 1 AND 2000),
    registered_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE segment_embeddings (
    segment_id      bigint NOT NULL REFERENCES segments (segment_id) ON DELETE CASCADE,
    model           text NOT NULL REFERENCES embedding_models (model),
    embedding       vector NOT NULL,
    embedded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, model)
);
CREATE INDEX segment_embeddings_model_idx ON segment_embeddings (model);

-- The default model is registered up front so its index exists before the first search.
INSERT INTO embedding_models (model, dimensions) VALUES ('all-MiniLM-L6-v2', 384);
CREATE INDEX segment_embeddings_hnsw_all_minilm_l6_v2
    ON segment_embeddings USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE model = 'all-MiniLM-L6-v2';

-- Ledger of every paid speech-recognition call.
CREATE TABLE asr_spend (
    spend_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    spent_at        timestamptz NOT NULL DEFAULT now(),
    video_id        text,
    engine          text NOT NULL,
    model           text NOT NULL,
    audio_seconds   double precision NOT NULL CHECK (audio_seconds >= 0),
    usd             numeric(10, 4) NOT NULL CHECK (usd >= 0)
);
CREATE INDEX asr_spend_day_idx ON asr_spend (((spent_at AT TIME ZONE 'UTC')::date));

-- Views: the stable surface for SQL consumers.

CREATE VIEW searchable_segments AS
SELECT s.segment_id,
       s.video_id,
       v.title,
       v.published_at,
       v.partition_date AS published_date,
       s.ordinal,
       s.start_s,
       s.end_s,
       s.text,
       'https://www.youtube.com/watch?v=' || s.video_id || '&t=' || floor(s.start_s)::bigint || 's' AS link
FROM segments s
JOIN videos v USING (video_id);

CREATE VIEW video_status AS
SELECT v.video_id,
       v.title,
       v.partition_date AS published_date,
       v.availability,
       t.source AS transcript_source,
       t.version AS transcript_version,
       t.fetched_at AS transcript_fetched_at,
       a.failure_class,
       a.message AS failure_message,
       a.retry_after,
       (SELECT count(*) FROM segments s WHERE s.video_id = v.video_id) AS segment_count
FROM videos v
LEFT JOIN transcripts t ON t.video_id = v.video_id AND t.is_current
LEFT JOIN transcript_attempts a ON a.video_id = v.video_id;

CREATE VIEW asr_spend_daily AS
SELECT (spent_at AT TIME ZONE 'UTC')::date AS day,
       engine,
       count(*) AS calls,
       sum(audio_seconds) AS audio_seconds,
       sum(usd) AS usd
FROM asr_spend
GROUP BY 1, 2;
