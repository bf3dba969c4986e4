"""The JSON API's response shapes (they are also its OpenAPI schema)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class SearchHit(BaseModel):
    """One moment. Fields the search adds beyond these (ranks, relevance) are passed through as they are."""

    model_config = ConfigDict(extra="allow")

    video_id: str
    title: str
    published_at: datetime | None
    start_s: float = Field(
        description="where the moment's answer begins inside its window, in seconds from the video's start"
    )
    end_s: float = Field(description="where the moment's window ends")
    window_start_s: float | None = Field(default=None, description="where the ranked window starts")
    window_end_s: float | None = Field(default=None, description="where the ranked window ends")
    text: str = Field(description="the window's words, as transcribed")
    link: str = Field(description="the YouTube link that plays from `start_s`")
    score: float = Field(description="rank score; higher is better (its scale depends on the mode)")


class SearchResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    query: str
    mode: str
    k: int
    published_from: date | None = Field(default=None, serialization_alias="from")
    published_to: date | None = Field(default=None, serialization_alias="to")
    model: str = Field(description="the embedding model whose vectors were searched")
    hits: list[SearchHit]


class Citation(BaseModel):
    n: int = Field(description="the number the answer cites it by, as [n]")
    video_id: str
    title: str
    published_at: datetime | None
    start_s: float
    end_s: float
    link: str
    text: str


class AnswerResponse(BaseModel):
    query: str
    answer: str = Field(description="plain text citing passages as [n]; invented citations are removed")
    answered: bool = Field(description="false when the passages found do not answer the question")
    citations: list[Citation]
    model: str | None = Field(description="the chat model that wrote the answer; null when none was asked")
    cost_usd: float = Field(description="what this request cost; 0 when served from the cache")
    cached: bool
    notice: str = Field(
        description="shown under every answer: it reports the videos, it is not medical advice"
    )


class ErrorResponse(BaseModel):
    error: str


class Health(BaseModel):
    status: str
    database: str
    videos: int | None = None
    segments: int | None = None
    embedded_segments: int | None = None
    embedding_model: str
    answers: str = Field(description="'available', or why answers cannot be written now")
