-- No row can hold an impossible time, and transcript sources become a table the code's registry
-- (chaffee_assets/transcription/registry.py) feeds, in place of a CHECK listing them.

-- 1. Times are bounded by what a video can be: at most a week (604800 s, MAX_MEDIA_SECONDS in
--    chaffee_assets/ingest/cues.py). A caption at hour 10^20 once reached `segments`, and every
--    deep link (`floor(start_s)::bigint`) then failed for every search. Rows written before this
--    migration are repaired first, so the constraints hold for all of them.

CREATE FUNCTION cues_within_bounds(cues jsonb, max_s numeric) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN jsonb_typeof(cues) IS DISTINCT FROM 'array' THEN false ELSE NOT EXISTS (
        SELECT 1 FROM jsonb_array_elements(cues) AS e(cue)
        WHERE jsonb_typeof(cue -> 'start') IS DISTINCT FROM 'number'
           OR jsonb_typeof(cue -> 'end') IS DISTINCT FROM 'number'
           OR (cue ->> 'start')::numeric NOT BETWEEN 0 AND max_s
           OR (cue ->> 'end')::numeric NOT BETWEEN 0 AND max_s
    ) END
$$;
COMMENT ON FUNCTION cues_within_bounds(jsonb, numeric) IS
    'Whether every cue of a transcript has numeric start and end seconds in [0, max_s].';

-- Cues past the bound are dropped, ends past it are clamped: the rest of the transcript is kept.
UPDATE transcripts t
SET cues = (
    SELECT coalesce(
        jsonb_agg(
            CASE WHEN (e.cue ->> 'end')::numeric > 604800
                 THEN jsonb_set(e.cue, '{end}', to_jsonb(604800)) ELSE e.cue END
            ORDER BY e.ordinal),
        '[]'::jsonb)
    FROM jsonb_array_elements(t.cues) WITH ORDINALITY AS e(cue, ordinal)
    WHERE jsonb_typeof(e.cue -> 'start') = 'number'
      AND jsonb_typeof(e.cue -> 'end') = 'number'
      AND (e.cue ->> 'start')::numeric BETWEEN 0 AND 604800
      AND (e.cue ->> 'end')::numeric >= 0
)
WHERE NOT cues_within_bounds(t.cues, 604800);

-- A segment past the bound is removed (its embeddings with it); re-running its day cuts it again
-- from the repaired transcript.
DELETE FROM segments WHERE NOT (start_s <= 604800);
UPDATE segments SET end_s = 604800 WHERE NOT (end_s <= 604800);
UPDATE videos SET duration_s = NULL WHERE NOT (duration_s <= 604800);
UPDATE transcripts SET audio_seconds = NULL WHERE NOT (audio_seconds <= 604800);

-- `<=` also refuses NaN and Infinity, which double precision can hold and which sort above all numbers.
ALTER TABLE segments
    ADD CONSTRAINT segments_times_within_a_week CHECK (start_s <= 604800 AND end_s <= 604800);
ALTER TABLE transcripts
    ADD CONSTRAINT transcripts_cues_within_a_week CHECK (cues_within_bounds(cues, 604800)),
    ADD CONSTRAINT transcripts_audio_within_a_week CHECK (audio_seconds IS NULL OR audio_seconds <= 604800);
ALTER TABLE videos
    ADD CONSTRAINT videos_duration_within_a_week CHECK (duration_s IS NULL OR duration_s <= 604800);

-- 2. Transcript sources. The registry upserts every entry after each upgrade; the rows below are
--    the sources that existed when this migration was written, so existing transcripts satisfy
--    the foreign key before the registry's first sync.

CREATE TABLE transcript_sources (
    source              text PRIMARY KEY CHECK (source ~ '^[a-z][a-z0-9_]*$'),
    rank                integer NOT NULL,
    speech_recognition  boolean NOT NULL,
    description         text NOT NULL
);
COMMENT ON TABLE transcript_sources IS
    'Where a transcript can come from (transcripts.source), fed by the code''s registry: a new '
    'transcript replaces the current one only from a higher rank unless forced.';

INSERT INTO transcript_sources (source, rank, speech_recognition, description) VALUES
    ('manual_captions', 5, false, 'captions a person uploaded to YouTube'),
    ('local_whisper',   4, true,  'faster-whisper on this machine (free): the back catalogue'),
    ('openai',          4, true,  'OpenAI whisper-1 (paid, under the daily budget): new days'),
    ('library_file',    3, false, 'a caption file in a local library folder'),
    ('auto_captions',   2, false, 'YouTube''s automatic captions');

ALTER TABLE transcripts DROP CONSTRAINT transcripts_source_check;
ALTER TABLE transcripts
    ADD CONSTRAINT transcripts_source_fkey FOREIGN KEY (source) REFERENCES transcript_sources (source);
