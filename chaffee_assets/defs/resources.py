"""Dagster resources for the warehouse and the video sources, configured from the environment."""

from __future__ import annotations

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
    DEFAULT_YOUTUBE_REQUEST_INTERVAL_S,
    Settings,
    settings,
)
from chaffee_assets.warehouse.kept_connections import warehouse_connection
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
        """A connection like `connect()`'s, kept open for the process's next step
        (`warehouse/kept_connections.py`), that turns a lost connection into one clear failure.

        Each video commits as it finishes, so the message can promise that a re-run is safe.
        """
        try:
            with warehouse_connection(ensure_schema(self.database_url or None)) as conn:
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
    request_interval_s: float = DEFAULT_YOUTUBE_REQUEST_INTERVAL_S

    _source: VideoSource | None = PrivateAttr(default=None)

    def get(self) -> VideoSource:
        """The source object, built once per run (a library is indexed once per process while its
        files are unchanged, not per day or run)."""
        if self._source is None:
            self._source = self._build()
        return self._source

    def _build(self) -> VideoSource:
        if self.library_dir:
            from chaffee_assets.ingest.library import LibrarySource

            return LibrarySource.shared(Path(self.library_dir).expanduser())
        from chaffee_assets.ingest.youtube import YouTubeSource

        return YouTubeSource(
            self.channel_url,
            channel_id=self.channel_id,
            api_key=self.youtube_api_key,
            proxy=self.proxy,
            cookies_file=self.cookies_file,
            request_interval_s=self.request_interval_s,
        )


YOUTUBE_API_KEY_VARIABLE = "YOUTUBE_API_KEY"
# Resource fields whose values are secrets: a proxy URL can carry a user and password.
SECRET_VARIABLES = {"youtube_api_key": YOUTUBE_API_KEY_VARIABLE, "proxy": "CHAFFEE_YOUTUBE_PROXY"}


def video_source_config(
    config: Settings, library_dir: str | None = None, channel_url: str | None = None
) -> dict:
    """The `video_source` resource's config from the settings, as run config accepts it.

    `library_dir` or `channel_url` replace the configured source (`chaffee ingest --library/--channel`).
    The API key and the proxy stay references to their variables (`{"env": …}`), so their values
    never enter a run's config or the UI.
    """
    if channel_url:
        library_dir = None
    elif not library_dir and config.library_dir:
        library_dir = str(config.library_dir)
    return {
        "library_dir": library_dir,
        "channel_url": channel_url or config.channel_url,
        "channel_id": config.channel_id,
        "youtube_api_key": {"env": YOUTUBE_API_KEY_VARIABLE} if config.youtube_api_key else None,
        "proxy": {"env": SECRET_VARIABLES["proxy"]} if config.youtube_proxy else None,
        "cookies_file": str(config.youtube_cookies) if config.youtube_cookies else None,
        "request_interval_s": config.youtube_request_interval_s,
    }


def video_source_from_env() -> VideoSourceResource:
    """The resource as the code location binds it, from the settings."""
    config = video_source_config(settings())
    # EnvVar keeps the values out of the UI and run config.
    for key, variable in SECRET_VARIABLES.items():
        if config[key]:
            config[key] = dg.EnvVar(variable)
    return VideoSourceResource(**config)


class EmbeddingModelResource(dg.ConfigurableResource):
    """The sentence-transformers model segments are embedded with (name or local path)."""

    model: str = DEFAULT_EMBEDDING_MODEL
    device: str | None = None  # None: CPU, or set "cuda"
    backend: str | None = None  # a CHAFFEE_EMBEDDING_BACKEND name; None: auto
    batch_size: int = 64

    def get(self) -> Embedder:
        """One loaded model per process and model name, shared by every asset and run in it."""
        return self.for_source(self.model)

    def for_source(self, source: str) -> Embedder:
        """Another registered model on the same device and backend (kept complete by every run)."""
        return _shared_embedder(source, self.device, self.backend, self.batch_size)


@cache
def _shared_embedder(model: str, device: str | None, backend: str | None, batch_size: int) -> Embedder:
    return Embedder(model, device=device, backend=backend, batch_size=batch_size)


def embedding_model_from_env() -> EmbeddingModelResource:
    config = settings()
    return EmbeddingModelResource(
        model=config.embedding_model, device=config.embedding_device, backend=config.embedding_backend
    )
