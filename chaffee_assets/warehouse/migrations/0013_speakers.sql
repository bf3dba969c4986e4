-- Who speaks when: enrolled voice profiles, each video's speaker turns with the model that made
-- them, the host's share of each segment's speech and the speaker of each cue (docs/speakers.md).

-- One row per enrolled person. The vector is the unit mean of the person's speech under `model`;
-- profiles of another model are kept but not used by it.
CREATE TABLE speaker_profiles (
    name            text PRIMARY KEY CHECK (name <> '' AND lower(name) <> 'other'),
    is_host         boolean NOT NULL DEFAULT false,
    model           text NOT NULL,
    vector          real[] NOT NULL CHECK (cardinality(vector) > 0),
    speech_s        double precision NOT NULL CHECK (speech_s > 0),
    sources         text[] NOT NULL,
    enrolled_at     timestamptz NOT NULL DEFAULT now()
);
-- Exactly one host at most; enrolment moves the flag in one transaction.
CREATE UNIQUE INDEX speaker_profiles_one_host ON speaker_profiles (is_host) WHERE is_host;

-- A video's labelling outcome: `labelled` (turns below), `unknown` (no audio to be had, or no host
-- enrolled: never guessed), `stale` (a profile it used was re-enrolled: recompute).
CREATE TABLE speaker_labellings (
    video_id        text PRIMARY KEY REFERENCES videos (video_id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('labelled', 'unknown', 'stale')),
    model           text,
    profiles        text[] NOT NULL DEFAULT '{}',
    audio_source    text,
    host_share      real CHECK (host_share BETWEEN 0 AND 1),
    message         text,
    labelled_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX speaker_labellings_profiles_idx ON speaker_labellings USING gin (profiles);

CREATE TABLE speaker_turns (
    video_id        text NOT NULL REFERENCES speaker_labellings (video_id) ON DELETE CASCADE,
    start_s         double precision NOT NULL CHECK (start_s >= 0),
    end_s           double precision NOT NULL,
    speaker         text NOT NULL,
    confidence      real NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    model           text NOT NULL,
    PRIMARY KEY (video_id, start_s),
    CHECK (end_s > start_s)
);

-- Per segment: the host's share of its speech (null: unknown) and who speaks most of it.
-- Segments are rewritten when a transcript changes; these rows go with them and are rewritten by
-- the next labelling.
CREATE TABLE segment_speakers (
    segment_id      bigint PRIMARY KEY REFERENCES segments (segment_id) ON DELETE CASCADE,
    host_share      real CHECK (host_share BETWEEN 0 AND 1),
    speaker         text
);

-- Per cue of a transcript: who speaks most of it, where known.
CREATE TABLE cue_speakers (
    transcript_id   bigint NOT NULL REFERENCES transcripts (transcript_id) ON DELETE CASCADE,
    cue_index       integer NOT NULL CHECK (cue_index >= 0),
    speaker         text NOT NULL,
    PRIMARY KEY (transcript_id, cue_index)
);
