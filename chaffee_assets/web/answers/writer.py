"""Answers with citations: the top hits, numbered, sent to a chat model under the daily answer budget.

Nothing is sent to the model unless answers are configured, the budget covers the call and the model
has not just failed; otherwise `AnswersUnavailable` says why (the API answers 503). An answer is kept
in the warehouse, and the same question asked again within a day is served from there at no cost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from chaffee_assets.error_text import redact
from chaffee_assets.search import nothing_relevant
from chaffee_assets.web.answers import ledger
from chaffee_assets.web.answers.passages import (
    NOTHING_FOUND_TEXT,
    Passage,
    answer_parts,
    build_messages,
    check_citations,
    cost_usd,
    estimate_input_tokens,
    number_passages,
    question_key,
)
from chaffee_assets.web.queries import SearchRequest
from chaffee_assets.web.settings import WebSettings

# After the model fails, requests are answered 503 at once for a while instead of piling onto it
# (`answer_pause_s`); a refused key or request needs a person, so that pause is ten times as long.
REFUSED_PAUSE_FACTOR = 10
# A refusal before work (429, 5xx) is retried once after the model's Retry-After, or this long,
# unless the model asks for a longer wait than MAX_RETRY_WAIT_S.
RETRY_WAIT_S = 0.5
MAX_RETRY_WAIT_S = 5.0

log = logging.getLogger(__name__)

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection]]
HitFinder = Callable[[psycopg.Connection, SearchRequest], list[dict[str, object]]]


class AnswersUnavailable(Exception):
    """No answer can be written now; nothing was sent to the model. `retry_after_s` when it is known."""

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    answered: bool
    citations: list[dict[str, object]]
    model: str
    cost_usd: float
    cached: bool
    # False when no model wrote the text (nothing closely related was found, so none was asked).
    written_by_model: bool = True

    def parts(self) -> list[tuple[str, dict[str, object] | None]]:
        """(words, None) and ("[n]", the cited passage) pieces, in order, for the page."""
        by_number = {int(c["n"]): c for c in self.citations}  # type: ignore[call-overload]
        parts = answer_parts(self.text)
        shown: list[tuple[str, dict[str, object] | None]] = []
        for i, (text, n) in enumerate(parts):
            followed_by_citation = i + 1 < len(parts) and parts[i + 1][1] is not None
            # A citation sits against the word it supports, as a superscript would.
            shown.append(
                (
                    text.rstrip() if followed_by_citation and n is None else text,
                    by_number.get(n) if n else None,
                )
            )
        return shown


def citation(passage: Passage) -> dict[str, object]:
    return {
        "n": passage.n,
        "video_id": passage.video_id,
        "title": passage.title,
        "published_at": passage.published_at,
        "start_s": passage.start_s,
        "end_s": passage.end_s,
        "link": passage.link,
        "text": passage.text,
    }


class AnswerWriter:
    """Writes, budgets and caches answers for one server process (the budget and cache are shared)."""

    def __init__(
        self,
        settings: WebSettings,
        *,
        connection: ConnectionFactory,
        find_hits: HitFinder,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._connection = connection
        self._find_hits = find_hits
        self._clock = clock
        self._client_obj: Any = None
        self._lock = threading.Lock()
        self._writing: dict[str, list[Any]] = {}  # key -> [lock, requests holding or awaiting it]
        self._paused_until = 0.0
        self._pause_reason = ""

    # -- availability ---------------------------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        """Why no answer can be written right now (None: answers are available)."""
        try:
            self.require_available()
        except AnswersUnavailable as exc:
            return str(exc)
        return None

    def require_available(self) -> None:
        """Raise AnswersUnavailable when no answer can be written now (costs nothing: no I/O)."""
        if not self.settings.answers_configured:
            raise AnswersUnavailable(
                "answers are not configured on this server: set OPENAI_API_KEY (and OPENAI_BASE_URL "
                "for another OpenAI-compatible server)"
            )
        remaining = self._paused_until - time.monotonic()
        if remaining > 0:
            raise AnswersUnavailable(self._pause_reason, retry_after_s=max(1, round(remaining)))

    def _pause(self, seconds: float, reason: str) -> AnswersUnavailable:
        seconds = min(max(seconds, 1.0), self.settings.answer_pause_s * REFUSED_PAUSE_FACTOR)
        with self._lock:
            self._paused_until = time.monotonic() + seconds
            self._pause_reason = f"{reason}; answers are paused for {round(seconds)} s"
        return AnswersUnavailable(self._pause_reason, retry_after_s=round(seconds))

    # -- answers ----------------------------------------------------------------------------------

    def key_for(self, request: SearchRequest) -> str:
        return question_key(
            request.query,
            mode=request.mode,
            published_from=request.published_from,
            published_to=request.published_to,
            model=self.settings.answer_model,
            embedding_model=self.settings.embedding_model,
            passages=self.settings.answer_passages,
        )

    def cached(self, request: SearchRequest) -> Answer | None:
        """The answer written to this question within the cache's lifetime, if any (costs nothing)."""
        if not self.settings.answers_configured:
            return None
        with self._connection() as conn:
            stored = ledger.cached_answer(
                conn, self.key_for(request), max_age=timedelta(hours=self.settings.answer_cache_hours)
            )
        if stored is None:
            return None
        return Answer(
            question=request.query,
            text=stored.answer,
            answered=stored.answered,
            citations=stored.citations,
            model=stored.model,
            cost_usd=0.0,
            cached=True,
        )

    def answer(self, request: SearchRequest) -> Answer:
        """An answer to `request.query` from its top hits; raises AnswersUnavailable with the reason."""
        self.require_available()
        cached = self.cached(request)
        if cached is not None:
            return cached
        key = self.key_for(request)
        # The same question asked twice at once is written once; the second waits and reads the cache.
        with self._writing_lock(key):
            cached = self.cached(request)
            if cached is not None:
                return cached
            self.require_available()
            return self._write(request, key)

    @contextlib.contextmanager
    def _writing_lock(self, key: str) -> Iterator[None]:
        with self._lock:
            entry = self._writing.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    self._writing.pop(key, None)

    def _write(self, request: SearchRequest, key: str) -> Answer:
        settings = self.settings
        with self._connection() as conn:
            hits = self._find_hits(conn, replace(request, k=settings.answer_passages))
        # Nothing found, or only moments below the model's relevance floor: nothing to write from,
        # so the model is not asked (and nothing is spent).
        if not hits or nothing_relevant(hits):
            return Answer(
                request.query, NOTHING_FOUND_TEXT, False, [], "", 0.0, False, written_by_model=False
            )
        passages = number_passages(hits)
        messages = build_messages(request.query, passages)
        estimated_input = estimate_input_tokens(messages)
        estimate = cost_usd(
            estimated_input,
            settings.answer_max_tokens,
            settings.input_usd_per_mtok,
            settings.output_usd_per_mtok,
        )
        reply, input_tokens, output_tokens, spend_id = self._ask_model(messages, key, estimate)
        # A server that reports no usage is billed at the estimate, never at nothing.
        input_tokens = input_tokens or estimated_input
        output_tokens = output_tokens or settings.answer_max_tokens
        paid = cost_usd(
            input_tokens, output_tokens, settings.input_usd_per_mtok, settings.output_usd_per_mtok
        )
        checked = check_citations(reply, len(passages))
        cited = [citation(passages[n - 1]) for n in checked.cited]
        with self._connection() as conn, conn.transaction():
            ledger.settle(conn, spend_id, input_tokens=input_tokens, output_tokens=output_tokens, usd=paid)
            ledger.store_answer(
                conn,
                question_key=key,
                question=request.query,
                model=settings.answer_model,
                answer=checked.text,
                answered=checked.answered,
                citations=cited,
                passages=[p.as_dict() for p in passages],
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=paid,
                spend_id=spend_id,
            )
        return Answer(
            request.query, checked.text, checked.answered, cited, settings.answer_model, paid, False
        )

    def _reserve(self, key: str, estimate: float) -> int:
        settings = self.settings
        now = self._clock()
        with self._connection() as conn:
            try:
                return ledger.reserve(
                    conn,
                    budget_usd=settings.answer_budget_usd,
                    estimate_usd=estimate,
                    model=settings.answer_model,
                    question_key=key,
                    now=now,
                )
            except ledger.BudgetSpent as exc:
                wait = (exc.retry_at - now).total_seconds()
                raise AnswersUnavailable(str(exc), retry_after_s=max(1, int(wait))) from exc

    def _settle_as(self, spend_id: int, outcome: Callable[[psycopg.Connection, int], None]) -> None:
        with self._connection() as conn:
            outcome(conn, spend_id)

    def _ask_model(
        self, messages: list[dict[str, str]], key: str, estimate: float
    ) -> tuple[str, int, int, int]:
        """The reply, its reported input and output tokens (0 when not reported) and its reservation.

        Every call is reserved before it is sent, a retry included. Only a call the model refused
        before doing any work (429 or 5xx) is retried, once, after a short wait; a timeout is never
        retried, since the model may be writing (and billing) the first one.
        """
        import openai

        attempts = 1 + self.settings.answer_retries
        for attempt in range(1, attempts + 1):
            spend_id = self._reserve(key, estimate)
            try:
                response = self._call_model(messages)
                return (*_read_reply(response), spend_id)
            except openai.APIStatusError as exc:
                # The model answered with an error status: the call was not billed.
                self._settle_as(spend_id, ledger.release)
                log.warning("answer model refused a call (HTTP %s): %s", exc.status_code, redact(str(exc)))
                wait = _retry_wait_s(exc)
                refused_before_work = exc.status_code == 429 or exc.status_code >= 500
                if refused_before_work and attempt < attempts and wait <= MAX_RETRY_WAIT_S:
                    time.sleep(wait)
                    continue
                raise self._pause_for(exc) from exc
            except openai.APITimeoutError as exc:
                self._settle_as(spend_id, ledger.mark_uncertain)
                log.warning("answer model timed out after %.0f s", self.settings.answer_timeout_s)
                raise self._pause(
                    self.settings.answer_pause_s,
                    f"the answer model did not answer within {self.settings.answer_timeout_s:g} s",
                ) from exc
            except openai.APIConnectionError as exc:
                # The call may or may not have reached the model: its estimate stays spent.
                self._settle_as(spend_id, ledger.mark_uncertain)
                log.warning("answer model unreachable at %s: %s", redact(str(self._client().base_url)), exc)
                raise self._pause(
                    self.settings.answer_pause_s, "the answer model could not be reached"
                ) from exc
            except MalformedReply as exc:
                # Status 200 with something that is not a chat completion: the model may have billed it.
                self._settle_as(spend_id, ledger.mark_uncertain)
                log.warning("answer model sent an unreadable reply: %s", redact(str(exc)))
                raise self._pause(
                    self.settings.answer_pause_s, "the answer model sent a reply that could not be read"
                ) from exc
            except BaseException:
                # No answer came back and the reason is unknown: the model may have billed it.
                self._settle_as(spend_id, ledger.mark_uncertain)
                raise
        raise AssertionError("unreachable: every attempt returns or raises")

    def _call_model(self, messages: list[dict[str, str]]) -> Any:
        client = self._client()
        try:
            # `max_tokens` rather than `max_completion_tokens`: every OpenAI-compatible server reads it.
            return client.chat.completions.create(
                model=self.settings.answer_model,
                messages=messages,
                max_tokens=self.settings.answer_max_tokens,
                temperature=0.2,
            )
        except ValueError as exc:
            # The body said JSON but was not (a proxy's error page, a truncated reply).
            raise MalformedReply(f"{type(exc).__name__}: {exc}") from exc

    def _pause_for(self, exc: Any) -> AnswersUnavailable:
        """The pause after an error status; the audience reads a fixed text, never the model's own."""
        import openai

        status = exc.status_code
        pause_s = self.settings.answer_pause_s
        if isinstance(exc, openai.RateLimitError):
            return self._pause(
                _retry_after_s(exc) or pause_s,
                f"the answer model is rate-limiting this server (HTTP {status})",
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return self._pause(
                pause_s * REFUSED_PAUSE_FACTOR,
                f"the answer model refused the API key (HTTP {status}); check OPENAI_API_KEY",
            )
        if status >= 500:
            return self._pause(pause_s, f"the answer model failed (HTTP {status})")
        return self._pause(
            pause_s * REFUSED_PAUSE_FACTOR,
            f"the answer model rejected the request (HTTP {status}); "
            "check CHAFFEE_ANSWER_MODEL and OPENAI_BASE_URL",
        )

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                import openai

                self._client_obj = openai.OpenAI(
                    api_key=self.settings.openai_api_key,
                    base_url=self.settings.openai_base_url,
                    # One bounded wait: connecting, then each read of the reply.
                    timeout=openai.Timeout(
                        self.settings.answer_timeout_s, connect=min(5.0, self.settings.answer_timeout_s)
                    ),
                    # Retries are ours (`_ask_model`), so that each one is reserved in the ledger first.
                    max_retries=0,
                )
            return self._client_obj


class MalformedReply(Exception):
    """The model answered 200 with something that is not a chat completion."""


def _read_reply(response: Any) -> tuple[str, int, int]:
    """The reply's text and its reported input and output tokens (0 when absent); MalformedReply otherwise."""
    try:
        choices = response.choices
        reply = (choices[0].message.content or "") if choices else ""
        if not isinstance(reply, str):
            raise TypeError(f"the reply's content is a {type(reply).__name__}")
        usage = getattr(response, "usage", None)
        input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise MalformedReply(f"{type(exc).__name__}: {exc}") from exc
    return reply, input_tokens, output_tokens


def _retry_wait_s(exc: Any) -> float:
    """How long to wait before the one retry: `retry-after-ms` first, as the openai client reads it."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
    return RETRY_WAIT_S


def _retry_after_s(exc: Any) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name, scale in (("retry-after", 1.0), ("retry-after-ms", 0.001)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return None
