"""Every way a transcript can be obtained, in one table: captions and the speech-recognition engines.

The policy, the transcripts asset, its checks, the store, the warehouse's `transcript_sources` table
(which `transcripts.source` references) and the CLI all read this registry. Adding an engine is one
`TranscriptSource` entry here plus its Dagster resource (a class with a `transcriber()` method and a
`from_env()` constructor) named by `resource`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import psycopg

MANUAL_CAPTIONS = "manual_captions"
AUTO_CAPTIONS = "auto_captions"
LIBRARY_FILE = "library_file"
LOCAL_WHISPER = "local_whisper"
OPENAI = "openai"


@dataclass(frozen=True, slots=True)
class TranscriptSource:
    """One source of transcripts; `name` is what `transcripts.source` stores."""

    name: str
    rank: int  # a transcript replaces the current one only from a higher-ranked source (unless forced)
    speech_recognition: bool  # runs a model on the audio (its output is checked for decoding loops)
    description: str
    aliases: tuple[str, ...] = ()  # other spellings accepted from a run tag, config or the CLI
    resource_key: str | None = None  # the Dagster resource key that runs the engine
    resource: str | None = None  # "module:Class" of that resource: `from_env()` and `transcriber()`
    price_per_minute_usd: float = 0.0  # list price of one minute of audio; 0 for free sources

    @property
    def paid(self) -> bool:
        """Paid engines reserve their estimate against the daily budget before every call."""
        return self.price_per_minute_usd > 0

    def resource_class(self) -> Any:
        """The Dagster resource class (imported on first use, so this module stays light)."""
        if self.resource is None:
            raise ValueError(f"{self.name} is not a speech-recognition engine; it has no resource")
        module, _, name = self.resource.partition(":")
        return getattr(importlib.import_module(module), name)


# Ranks: manual captions are written by a person; Whisper output has punctuation and sentence
# boundaries that auto captions lack; a library file is usually auto captions saved by yt-dlp.
SOURCES: tuple[TranscriptSource, ...] = (
    TranscriptSource(MANUAL_CAPTIONS, 5, False, "captions a person uploaded to YouTube"),
    TranscriptSource(
        LOCAL_WHISPER,
        4,
        True,
        "faster-whisper on this machine (free): the back catalogue",
        aliases=("local",),
        resource_key="local_whisper",
        resource="chaffee_assets.defs.transcription_resources:LocalWhisperResource",
    ),
    TranscriptSource(
        OPENAI,
        4,
        True,
        "OpenAI whisper-1 (paid, under the daily budget): new days",
        resource_key="openai_whisper",
        resource="chaffee_assets.defs.transcription_resources:OpenAIWhisperResource",
        price_per_minute_usd=0.006,
    ),
    TranscriptSource(LIBRARY_FILE, 3, False, "a caption file in a local library folder"),
    TranscriptSource(AUTO_CAPTIONS, 2, False, "YouTube's automatic captions"),
)
_BY_NAME = {source.name: source for source in SOURCES}
_SPELLINGS = {spelling: s.name for s in SOURCES for spelling in (s.name, *s.aliases)}

# Which engine the policy gives the back catalogue (free, no hurry) and new days (few, wanted soon).
BACK_CATALOGUE_ENGINE = LOCAL_WHISPER
NEW_DAYS_ENGINE = OPENAI


def source(name: str) -> TranscriptSource:
    """The registry entry for a stored source name; ValueError naming the known ones otherwise."""
    found = _BY_NAME.get(name)
    if found is None:
        raise ValueError(f"unknown transcript source {name!r}; known: {', '.join(_BY_NAME)}")
    return found


def rank(name: str) -> int:
    return source(name).rank


def is_speech_recognition(name: str) -> bool:
    return source(name).speech_recognition


def engines() -> tuple[TranscriptSource, ...]:
    """The speech-recognition engines, in registry order."""
    return tuple(s for s in SOURCES if s.speech_recognition)


def caption_sources() -> tuple[str, ...]:
    return tuple(s.name for s in SOURCES if not s.speech_recognition)


def engine_spellings() -> tuple[str, ...]:
    """Every spelling of an engine an operator may type (names first, then aliases)."""
    names = [e.name for e in engines()]
    return (*names, *(a for e in engines() for a in e.aliases))


def normalise_engine(spelling: str) -> str:
    """The engine's registry name for an accepted spelling; ValueError naming the choices otherwise."""
    name = _SPELLINGS.get(spelling.strip().lower())
    if name is None or not _BY_NAME[name].speech_recognition:
        choices = " or ".join(
            f"'{e.name}'" + "".join(f" (or '{alias}')" for alias in e.aliases) for e in engines()
        )
        raise ValueError(f"unknown speech-recognition engine {spelling!r}: use {choices}")
    return name


_SYNC_SOURCES = """
INSERT INTO transcript_sources (source, rank, speech_recognition, description)
VALUES (%(name)s, %(rank)s, %(speech_recognition)s, %(description)s)
ON CONFLICT (source) DO UPDATE SET
    rank = EXCLUDED.rank,
    speech_recognition = EXCLUDED.speech_recognition,
    description = EXCLUDED.description
"""


def sync_table(conn: psycopg.Connection) -> None:
    """Make `transcript_sources` hold every registry entry (rows of retired sources are kept, since
    old transcripts may still name them). Runs in the caller's transaction."""
    with conn.cursor() as cur:
        cur.executemany(
            _SYNC_SOURCES,
            [
                {
                    "name": s.name,
                    "rank": s.rank,
                    "speech_recognition": s.speech_recognition,
                    "description": s.description,
                }
                for s in SOURCES
            ],
        )
