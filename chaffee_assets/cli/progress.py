"""What `chaffee ingest` shows while its runs go: a live status line on a terminal, plain lines otherwise.

The figures come from the runs' own events (each day's materialisation metadata), so they are the
same numbers the UI shows. On a terminal one line is redrawn every second with the days, videos,
segments and embeddings done so far and an estimate of the time left; when output goes to a file or a
pipe only one plain line per finished run is written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TextIO

import dagster as dg

from chaffee_assets.ingest_runner import DayRange

ASSETS = ("videos", "transcripts", "segments", "segment_embeddings")
# Each day weighs its videos plus a little, so the estimate also moves through days without videos.
_EMPTY_DAY_WEIGHT = 0.05


@dataclass
class _RunFigures:
    day_range: DayRange
    started: float
    step: str = "starting"
    videos: int = 0
    transcripts: int = 0
    failed: int = 0
    segments: int = 0
    embeddings: int = 0
    days_done: set[date] = field(default_factory=set)


class IngestProgress:
    """A `RunWatcher` that prints progress to `stream`."""

    def __init__(
        self,
        stream: TextIO,
        videos_by_day: Mapping[date, int],
        ranges: list[DayRange],
        *,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interactive = stream.isatty() if interactive is None else interactive
        self._clock = clock
        self._started = clock()
        self._videos_by_day = dict(videos_by_day)
        self._days = [day for day_range in ranges for day in day_range.days]
        self._total_runs = len(ranges)
        self._total_weight = len(ASSETS) * sum(self._weight(day) for day in self._days) or 1.0
        self._done_weight = 0.0
        self._runs: dict[str, _RunFigures] = {}
        self._finished = 0
        self._totals = _RunFigures(DayRange(date.min, date.min), self._started)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self._interactive:
            self._ticker = threading.Thread(target=self._tick, name="ingest-progress", daemon=True)
            self._ticker.start()

    # RunWatcher
    def run_started(self, run_id: str, day_range: DayRange) -> None:
        with self._lock:
            self._runs[run_id] = _RunFigures(day_range, self._clock())
            self._draw()

    def event(self, run_id: str, event: dg.DagsterEvent) -> None:
        with self._lock:
            figures = self._runs.get(run_id)
            if figures is None:
                return
            if event.event_type == dg.DagsterEventType.STEP_START and event.step_key:
                figures.step = event.step_key
            elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                self._count(figures, event)
            self._draw()

    def run_finished(self, run_id: str, day_range: DayRange, ok: bool) -> None:
        with self._lock:
            self._finished += 1
            figures = self._runs.pop(run_id, None) or _RunFigures(day_range, self._clock())
            self._clear_line()
            seconds = self._clock() - figures.started
            if not ok:
                verdict = "FAILED (see the run in the Dagster UI)"
            elif figures.failed:
                # The run succeeded, but not every video got a transcript: never "ok" then.
                verdict = f"{figures.failed} video(s) without a transcript (listed in the summary)"
            else:
                verdict = "ok"
            total = f"/{self._total_runs}" if self._total_runs else ""
            self._stream.write(
                f"  [{self._finished}{total}] {day_range}: {verdict} — {figures.videos} video(s), "
                f"{figures.transcripts} transcript(s), {figures.segments} segment(s), "
                f"{figures.embeddings} newly embedded ({seconds:.0f} s)\n"
            )
            self._stream.flush()
            self._draw()

    def close(self) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join(timeout=2)
        with self._lock:
            self._clear_line()

    # figures
    def _weight(self, day: date) -> float:
        return self._videos_by_day.get(day, 0) + _EMPTY_DAY_WEIGHT

    def _count(self, run: _RunFigures, event: dg.DagsterEvent) -> None:
        materialization = event.materialization
        asset = materialization.asset_key.to_user_string()
        day = date.fromisoformat(materialization.partition) if materialization.partition else None
        values = {key: value.value for key, value in materialization.metadata.items()}
        for figures in (run, self._totals):
            self._add(figures, asset, day, values)
        if day is not None and asset in ASSETS:
            self._done_weight += self._weight(day)

    @staticmethod
    def _add(figures: _RunFigures, asset: str, day: date | None, values: Mapping[str, object]) -> None:
        if asset == "videos":
            figures.videos += int(values.get("video_count", 0))
        elif asset == "transcripts":
            figures.transcripts += int(values.get("written", 0)) + int(values.get("kept", 0))
            figures.failed += int(values.get("failed", 0))
        elif asset == "segments":
            figures.segments += int(values.get("segment_count", 0))
        elif asset == "segment_embeddings":
            figures.embeddings += int(values.get("segments_embedded", 0))
            if day:
                figures.days_done.add(day)

    def _status(self) -> str:
        elapsed = self._clock() - self._started
        totals = self._totals
        videos_total = sum(self._videos_by_day.get(day, 0) for day in self._days)
        active = list(self._runs.values())
        where = ", ".join(f"{f.day_range} {f.step}" for f in active) or "between runs"
        fraction = min(self._done_weight / self._total_weight, 1.0)
        if fraction > 0.02:
            estimate = f"about {_clock_time(elapsed * (1 - fraction) / fraction)} left"
        else:
            estimate = "estimating"
        return (
            f"run {self._finished + len(active)}/{self._total_runs} ({where})"
            f" · days {len(totals.days_done)}/{len(self._days)} · videos {totals.videos}/{videos_total}"
            f" · segments {totals.segments} · embeddings {totals.embeddings}"
            f" · {_clock_time(elapsed)} elapsed, {estimate}"
        )

    # terminal
    def _draw(self) -> None:
        if not self._interactive:
            return
        line = self._status()
        self._stream.write("\r\x1b[K" + line)
        self._stream.flush()

    def _clear_line(self) -> None:
        if self._interactive:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._draw()


def _clock_time(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
