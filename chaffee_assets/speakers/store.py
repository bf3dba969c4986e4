"""Voice profiles and speaker labels in the warehouse: enrol, list, write a video's labelling idempotently."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg

from chaffee_assets.speakers.labelling import Labelling, Profile


def save_profile(conn: psycopg.Connection, profile: Profile, sources: Sequence[str]) -> int:
    """Store (or replace) a profile; the host flag moves to it when it is the host. Returns how many
    labelled videos used the replaced profile (or the previous host) and are now marked stale."""
    with conn.transaction():
        previous_host = conn.execute("SELECT name FROM speaker_profiles WHERE is_host").fetchone()
        if profile.is_host:
            conn.execute(
                "UPDATE speaker_profiles SET is_host = false WHERE is_host AND name <> %s", (profile.name,)
            )
        conn.execute(
            """
            INSERT INTO speaker_profiles (name, is_host, model, vector, speech_s, sources)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET is_host = EXCLUDED.is_host, model = EXCLUDED.model,
                vector = EXCLUDED.vector, speech_s = EXCLUDED.speech_s, sources = EXCLUDED.sources,
                enrolled_at = now()
            """,
            (
                profile.name,
                profile.is_host,
                profile.model,
                profile.vector.tolist(),
                profile.speech_s,
                list(sources),
            ),
        )
        affected = [profile.name]
        if profile.is_host and previous_host and previous_host[0] != profile.name:
            affected.append(previous_host[0])
        # Videos labelled with no profile at all (no host then) are affected by any new host too.
        stale = conn.execute(
            """
            UPDATE speaker_labellings SET status = 'stale'
            WHERE status <> 'stale' AND (profiles && %s::text[] OR (%s AND status = 'unknown' AND profiles = '{}'))
            """,
            (affected, profile.is_host),
        )
        return stale.rowcount


def load_profiles(conn: psycopg.Connection, model: str | None = None) -> list[Profile]:
    rows = conn.execute(
        "SELECT name, is_host, vector, model, speech_s FROM speaker_profiles"
        " WHERE %s::text IS NULL OR model = %s ORDER BY NOT is_host, name",
        (model, model),
    ).fetchall()
    return [
        Profile(name, is_host, np.asarray(vector, dtype=np.float32), mod, speech)
        for name, is_host, vector, mod, speech in rows
    ]


def host_of_another_model(conn: psycopg.Connection, model: str) -> tuple[str, str] | None:
    """The host's (name, model) when his profile was made by a voice model other than `model`: after
    the setting changes, he must be enrolled again before that model can find him."""
    return conn.execute(
        "SELECT name, model FROM speaker_profiles WHERE is_host AND model <> %s", (model,)
    ).fetchone()


def profile_rows(conn: psycopg.Connection) -> list[tuple]:
    """(name, is_host, model, speech_s, sources, enrolled_at) for `chaffee speakers list`."""
    return conn.execute(
        "SELECT name, is_host, model, speech_s, sources, enrolled_at FROM speaker_profiles ORDER BY NOT is_host, name"
    ).fetchall()


def host_share_between(labelling: Labelling, start_s: float, end_s: float) -> float | None:
    """The host's share of the speech inside [start_s, end_s]; None when nothing there is voiced."""
    voiced = host = 0.0
    for turn in labelling.turns:
        overlap = min(end_s, turn.end_s) - max(start_s, turn.start_s)
        if overlap > 0:
            voiced += overlap
            if turn.speaker == labelling.host:
                host += overlap
    return host / voiced if voiced > 0 and labelling.host is not None else None


def main_speaker_between(labelling: Labelling, start_s: float, end_s: float) -> str | None:
    spoken: dict[str, float] = {}
    for turn in labelling.turns:
        overlap = min(end_s, turn.end_s) - max(start_s, turn.start_s)
        if overlap > 0:
            spoken[turn.speaker] = spoken.get(turn.speaker, 0.0) + overlap
    return max(spoken, key=spoken.__getitem__) if spoken else None


def write_labelling(
    conn: psycopg.Connection, video_id: str, labelling: Labelling, profiles: Sequence[str], audio_source: str
) -> None:
    """Replace the video's turns, its segments' host shares and its current transcript's cue speakers."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO speaker_labellings (video_id, status, model, profiles, audio_source, host_share, message)
            VALUES (%s, 'labelled', %s, %s, %s, %s, NULL)
            ON CONFLICT (video_id) DO UPDATE SET status = 'labelled', model = EXCLUDED.model,
                profiles = EXCLUDED.profiles, audio_source = EXCLUDED.audio_source,
                host_share = EXCLUDED.host_share, message = NULL, labelled_at = now()
            """,
            (video_id, labelling.model, list(profiles), audio_source, labelling.host_share),
        )
        conn.execute("DELETE FROM speaker_turns WHERE video_id = %s", (video_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO speaker_turns (video_id, start_s, end_s, speaker, confidence, model)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (video_id, t.start_s, t.end_s, t.speaker, t.confidence, labelling.model)
                    for t in labelling.turns
                    if t.end_s > t.start_s
                ],
            )
        segments = conn.execute(
            "SELECT segment_id, start_s, end_s FROM segments WHERE video_id = %s", (video_id,)
        ).fetchall()
        conn.execute(
            "DELETE FROM segment_speakers WHERE segment_id IN (SELECT segment_id FROM segments WHERE video_id = %s)",
            (video_id,),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO segment_speakers (segment_id, host_share, speaker) VALUES (%s, %s, %s)",
                [
                    (
                        sid,
                        host_share_between(labelling, start, end),
                        main_speaker_between(labelling, start, end),
                    )
                    for sid, start, end in segments
                ],
            )
        transcript = conn.execute(
            "SELECT transcript_id, cues FROM transcripts WHERE video_id = %s AND is_current", (video_id,)
        ).fetchone()
        if transcript:
            transcript_id, cues = transcript
            conn.execute("DELETE FROM cue_speakers WHERE transcript_id = %s", (transcript_id,))
            rows = []
            for index, cue in enumerate(cues):
                speaker = main_speaker_between(labelling, float(cue["start"]), float(cue["end"]))
                if speaker is not None:
                    rows.append((transcript_id, index, speaker))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO cue_speakers (transcript_id, cue_index, speaker) VALUES (%s, %s, %s)", rows
                )


def write_unknown(conn: psycopg.Connection, video_id: str, message: str) -> None:
    """No audio, or no host: the video's speakers are unknown (null shares), never guessed."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO speaker_labellings (video_id, status, message) VALUES (%s, 'unknown', %s)
            ON CONFLICT (video_id) DO UPDATE SET status = 'unknown', model = NULL, profiles = '{}',
                audio_source = NULL, host_share = NULL, message = EXCLUDED.message, labelled_at = now()
            -- the same verdict again changes no row: re-running a day is a no-op
            WHERE speaker_labellings.status <> 'unknown' OR speaker_labellings.message <> EXCLUDED.message
            """,
            (video_id, message),
        )
        conn.execute("DELETE FROM speaker_turns WHERE video_id = %s", (video_id,))
        conn.execute(
            "DELETE FROM segment_speakers WHERE segment_id IN (SELECT segment_id FROM segments WHERE video_id = %s)",
            (video_id,),
        )
