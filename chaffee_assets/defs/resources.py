"""Dagster resources for the warehouse and the video sources, configured from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import dagster as dg
import psycopg
from pydantic import PrivateAttr

from chaffee_assets.ingest.sources import VideoSource
from chaffee_assets.retrieval.embedder import Embedder
from chaffee_assets.settings import (
    DEFAULT_CHANNEL_ID,
    DEFAULT_CHANNEL_URL,
    DEFAULT_EMBEDDING_MODEL,
    SettingsError,
)
from chaffee_assets.warehouse.migrate import ensure_schema
from chaffee_assets.warehouse.server import connect


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL + pgvector warehouse. No URL: `DATABASE_URL`, else the embedded server."""

    database_url: str | None = None

    def connect(self) -> psycopg.Connection:
        """A new autocommit connection to a migrated warehouse (migrations run once per process).

        Autocommit, so each store function's `conn.transaction()` is a real transaction that
        commits when the video is done: a run killed mid-partition keeps every finished video and
        holds no row lock longer than one video's write.
        """
        url = ensure_schema(self.database_url or None)
        return connect(url, autocommit=True)

    @contextmanager
    def session(self) -> Iterator[psycopg.Connection]:
        """`connect()` as a context manager that turns a lost connection into one clear failure.

        Each video commits as it finishes, so the message can promise that a re-run is safe.
        """
        try:
            with self.connect() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise dg.Failure(
                description=f"lost the connection to PostgreSQL ({first_line}); finished videos are kept, "
                "re-run the partition once the database is back",
                allow_retries=True,
            ) from exc


class VideoSourceResource(dg.ConfigurableResource):
    """Where videos come from: a local library folder when one is set, else the YouTube channel."""

    library_dir: str | None = None
    channel_url: str = DEFAULT_CHANNEL_URL
    channel_id: str | None = DEFAULT_CHANNEL_ID
    youtube_api_key: str | None = None
    proxy: str | None = None
    cookies_file: str | None = None
    request_interval_s: float = 2.0

    _source: VideoSource | None = PrivateAttr(default=None)

    def get(self) -> VideoSource:
        """The source object, built once per process (a library is indexed once, not per day)."""
        if self._source is None:
            self._source = self._build()
        return self._source

    def _build(self) -> VideoSource:
        if self.library_dir:
            from chaffee_assets.ingest.library import LibrarySource

            return LibrarySource(Path(self.library_dir).expanduser())
        from chaffee_assets.ingest.youtube import YouTubeSource

        return YouTubeSource(
            self.channel_url,
            channel_id=self.channel_id,
            api_key=self.youtube_api_key,
            proxy=self.proxy,
            cookies_file=self.cookies_file,
            request_interval_s=self.request_interval_s,
        )


def _secret(name: str) -> dg.EnvVar | None:
    # EnvVar keeps the value out of the UI and run config; only used when the variable is set.
    return dg.EnvVar(name) if os.environ.get(name) else None


def _seconds_setting(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise SettingsError(
            f"{name}={raw!r} is not a number of seconds (0 or more); unset it for {default:g}"
        )
    return value


def video_source_from_env() -> VideoSourceResource:
    return VideoSourceResource(
        library_dir=os.environ.get("CHAFFEE_LIBRARY_DIR") or None,
        channel_url=os.environ.get("CHAFFEE_CHANNEL_URL", DEFAULT_CHANNEL_URL),
        channel_id=os.environ.get("CHAFFEE_CHANNEL_ID", DEFAULT_CHANNEL_ID),
        youtube_api_key=_secret("YOUTUBE_API_KEY"),
        # A proxy URL can carry a user and password: a secret like the API key.
        proxy=_secret("CHAFFEE_YOUTUBE_PROXY"),
        cookies_file=os.environ.get("CHAFFEE_YOUTUBE_COOKIES") or None,
        request_interval_s=_seconds_setting("CHAFFEE_YOUTUBE_REQUEST_INTERVAL_S", 2.0),
    )


class EmbeddingModelResource(dg.ConfigurableResource):
    """The sentence-transformers model segments are embedded with (name or local path)."""

    model: str = DEFAULT_EMBEDDING_MODEL
    device: str | None = None  # None: CPU, or set "cuda"
    batch_size: int = 64

    def get(self) -> Embedder:
        """One loaded model per process and model name, shared by every asset and run in it."""
        return _shared_embedder(self.model, self.device, self.batch_size)


@cache
def _shared_embedder(model: str, device: str | None, batch_size: int) -> Embedder:
    return Embedder(model, device=device, batch_size=batch_size)


def embedding_model_from_env() -> EmbeddingModelResource:
    return EmbeddingModelResource(
        model=os.environ.get("CHAFFEE_EMBEDDING_MODEL", DEFAULT_EMBEDDING_MODEL),
        device=os.environ.get("CHAFFEE_EMBEDDING_DEVICE") or None,
    )
