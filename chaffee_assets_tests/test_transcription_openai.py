"""OpenAI transcription through the real `openai` client, against a local server that answers like
`POST /v1/audio/transcriptions` (multipart upload, verbose_json), including 429 and 5xx."""

from __future__ import annotations

import contextlib
import io
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import psycopg
import pytest

from chaffee_assets.defs.transcription_resources import OpenAIWhisperResource
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.settings import SettingsError
from chaffee_assets.transcription import budget
from chaffee_assets.transcription.openai_whisper import OpenAISettings, OpenAITranscriber
from chaffee_assets_tests.openai_stand_in import ScriptedOpenAIEndpoint
from chaffee_assets_tests.speech_samples import joined_speech, speech


class FakeTranscriptionServer(ScriptedOpenAIEndpoint):
    """`POST /v1/audio/transcriptions`: a multipart upload in, verbose_json segments covering it out."""

    @property
    def uploads(self) -> list[dict[str, object]]:
        return self.requests

    def parse(self, content_type: str, body: bytes) -> dict[str, object]:
        return _multipart(content_type, body)

    def answer(self, fields: dict[str, object]) -> dict[str, object]:
        return _verbose_json(fields["file"])  # type: ignore[arg-type]


def _multipart(content_type: str, body: bytes) -> dict[str, object]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, object] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name == "file":
            fields["file"] = payload
            fields["filename"] = part.get_filename()
        else:
            fields.setdefault(name, [])
            fields[name].append(payload.decode())  # type: ignore[union-attr]
    return fields


def _verbose_json(audio_bytes: bytes) -> dict[str, object]:
    """Segments of 2 s covering the uploaded audio, as the real endpoint's verbose_json lays them out."""
    with av.open(io.BytesIO(audio_bytes)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        duration = samples / container.streams.audio[0].rate
    segments, start, index = [], 0.0, 0
    while start < duration:
        end = min(start + 2.0, duration)
        segments.append(
            {
                "id": index,
                "seek": 0,
                "start": start,
                "end": end,
                "text": f" words {index}",
                "tokens": [1, 2],
                "temperature": 0.0,
                "avg_logprob": -0.2,
                "compression_ratio": 1.1,
                "no_speech_prob": 0.01,
            }
        )
        start, index = end, index + 1
    return {
        "task": "transcribe",
        "language": "english",
        "duration": duration,
        "text": "".join(s["text"] for s in segments),
        "segments": segments,
    }


@pytest.fixture
def server() -> Iterator[FakeTranscriptionServer]:
    fake = FakeTranscriptionServer()
    yield fake
    fake.close()


def _transcriber(server: FakeTranscriptionServer, url: str, **overrides: object) -> OpenAITranscriber:
    settings = OpenAISettings(
        api_key="sk-test",
        base_url=server.base_url,
        max_retries=2,
        timeout_s=30,
        **overrides,  # type: ignore[arg-type]
    )
    return OpenAITranscriber(settings, connect=lambda: psycopg.connect(url, autocommit=True))


def _ledger(url: str) -> list[tuple[str | None, float, float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT video_id, audio_seconds, usd FROM asr_spend ORDER BY spend_id").fetchall()
    return [(video, seconds, float(usd)) for video, seconds, usd in rows]


def test_short_file_is_one_upload_with_verbose_json_segments(server, warehouse_url: str) -> None:
    result = _transcriber(server, warehouse_url).transcribe(speech("whisper/jfk.flac"), video_id="jfk")

    assert len(server.uploads) == 1
    upload = server.uploads[0]
    assert upload["path"] == "/v1/audio/transcriptions"
    assert upload["auth"] == "Bearer sk-test"
    assert upload["model"] == ["whisper-1"] and upload["response_format"] == ["verbose_json"]
    assert upload["timestamp_granularities[]"] == ["segment"]
    assert (result.engine, result.model, result.language) == ("openai", "whisper-1", "en")
    assert result.audio_seconds == pytest.approx(11.0, abs=0.01)
    assert result.cues[0].start == 0.0 and result.cues[-1].end == pytest.approx(11.0, abs=0.05)
    assert result.cost_usd == pytest.approx(budget.estimate_cost(11.0, 0.006))
    assert _ledger(warehouse_url) == [("jfk", pytest.approx(11.0, abs=0.01), pytest.approx(result.cost_usd))]


def test_long_audio_is_uploaded_in_pieces_and_timestamps_join_up(
    server, warehouse_url: str, tmp_path: Path
) -> None:
    long_file, _ = joined_speech(tmp_path / "joined.wav", rounds=2)
    result = _transcriber(server, warehouse_url, max_upload_bytes=60_000).transcribe(
        long_file, video_id="long"
    )

    assert len(server.uploads) >= 4
    assert all(len(upload["file"]) < 60_000 for upload in server.uploads)  # type: ignore[arg-type]
    # Each piece's segments start at 0 on the server; re-offset, they tile the original audio.
    assert result.cues[0].start == 0.0
    for before, after in zip(result.cues, result.cues[1:], strict=False):
        assert after.start == pytest.approx(before.end, abs=0.06), (before, after)
    assert result.cues[-1].end == pytest.approx(result.audio_seconds, abs=0.06)
    ledger = _ledger(warehouse_url)
    assert len(ledger) == len(server.uploads)  # one row per paid call
    assert sum(seconds for _, seconds, _ in ledger) == pytest.approx(result.audio_seconds, abs=0.01)
    assert sum(usd for _, _, usd in ledger) == pytest.approx(result.cost_usd)


def test_rate_limit_then_success_is_retried(server, warehouse_url: str) -> None:
    server.script = [429]
    result = _transcriber(server, warehouse_url).transcribe(speech("deepspeech/LDC93S1.wav"), video_id="v429")

    assert len(server.uploads) == 2
    assert result.cues
    assert len(_ledger(warehouse_url)) == 1


def test_persistent_rate_limit_is_blocked_not_paid(server, warehouse_url: str) -> None:
    server.script = [429] * 10
    with pytest.raises(TranscriptFailure) as caught:
        _transcriber(server, warehouse_url).transcribe(speech("deepspeech/LDC93S1.wav"), video_id="v429")
    assert caught.value.failure_class is FailureClass.BLOCKED
    assert caught.value.retry_after is not None
    assert len(server.uploads) == 3  # the first try and two retries
    assert _ledger(warehouse_url) == []


def test_persistent_server_error_is_recorded_and_paid_pieces_are_kept(
    server, warehouse_url: str, tmp_path: Path, monkeypatch
) -> None:
    long_file, _ = joined_speech(tmp_path / "joined.wav")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    server.script = [200] + [500] * 10  # the first piece succeeds, the second never does
    transcriber = _transcriber(server, warehouse_url, max_upload_bytes=60_000)
    with pytest.raises(TranscriptFailure) as caught:
        transcriber.transcribe(long_file, video_id="v500")

    failure = caught.value
    assert failure.failure_class is FailureClass.ERROR
    assert "v500" in failure.message and "HTTP 500" in failure.message and "piece 2/" in failure.message
    assert len(server.uploads) == 1 + 3
    assert list(scratch.iterdir()) == []  # the re-encoded pieces were removed
    # The piece OpenAI did transcribe was paid for and stays in the ledger; the reservation is gone.
    ledger = _ledger(warehouse_url)
    assert len(ledger) == 1 and ledger[0][0] == "v500"
    assert ledger[0][2] == pytest.approx(budget.estimate_cost(ledger[0][1], 0.006))
    # The failure can be stored like any other per-video outcome.
    from chaffee_assets.ingest import store

    with psycopg.connect(warehouse_url) as conn:
        conn.execute("INSERT INTO videos (video_id, source, title, url) VALUES ('v500', 'library', 't', 'u')")
        conn.commit()
        store.record_failure(conn, "v500", failure)
        row = conn.execute(
            "SELECT failure_class, message FROM transcript_attempts WHERE video_id = 'v500'"
        ).fetchone()
    assert row == ("error", failure.message)


def test_budget_refuses_the_call_that_would_cross_it(server, warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        budget.record_spend(
            conn, video_id="earlier", engine="openai", model="whisper-1", audio_seconds=1, usd=4.9999
        )
    with pytest.raises(TranscriptFailure) as caught:
        _transcriber(server, warehouse_url, daily_budget_usd=5.0).transcribe(
            speech("whisper/jfk.flac"), video_id="jfk"
        )
    assert caught.value.failure_class is FailureClass.OVER_BUDGET
    assert caught.value.retry_after == budget.next_utc_midnight(datetime.now(UTC))
    assert server.uploads == []  # no request reached the server
    assert len(_ledger(warehouse_url)) == 1  # nothing added


def test_missing_api_key_is_engine_unavailable(server, warehouse_url: str, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    transcriber = OpenAITranscriber(
        OpenAISettings(base_url=server.base_url),
        connect=lambda: psycopg.connect(warehouse_url, autocommit=True),
    )
    with pytest.raises(TranscriptFailure) as caught:
        transcriber.transcribe(speech("whisper/jfk.flac"), video_id="jfk")
    assert caught.value.failure_class is FailureClass.ENGINE_UNAVAILABLE
    assert "OPENAI_API_KEY" in caught.value.message
    assert server.uploads == []


def test_key_and_base_url_come_from_the_environment_like_the_client(
    server, warehouse_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    transcriber = OpenAITranscriber(connect=lambda: psycopg.connect(warehouse_url, autocommit=True))
    transcriber.transcribe(speech("deepspeech/LDC93S1.wav"), video_id="env")
    assert server.uploads[0]["auth"] == "Bearer sk-from-env"


def test_undecodable_audio_is_an_error_before_any_spend(server, warehouse_url: str, tmp_path: Path) -> None:
    bogus = tmp_path / "broken.m4a"
    bogus.write_bytes(b"\x00" * 1000)
    with pytest.raises(TranscriptFailure) as caught:
        _transcriber(server, warehouse_url).transcribe(bogus, video_id="broken")
    assert caught.value.failure_class is FailureClass.ERROR and "broken" in caught.value.message
    assert server.uploads == [] and _ledger(warehouse_url) == []


# -- a server that never answers: the upload timeout and retries are settings ---------------------


class SilentServer:
    """Accepts every upload, counts it, and answers only after `answer_after_s` (long after any timeout)."""

    def __init__(self, answer_after_s: float = 8.0) -> None:
        self.uploads = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.uploads += 1
                time.sleep(answer_after_s)
                with contextlib.suppress(OSError):  # the client has long hung up
                    self.send_response(200)
                    self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_hung_upload_is_abandoned_after_the_configured_timeout_and_retries(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAFFEE_OPENAI_TIMEOUT_S", "1")
    monkeypatch.setenv("CHAFFEE_OPENAI_MAX_RETRIES", "1")
    silent = SilentServer()
    try:
        resource = OpenAIWhisperResource(api_key="sk-test", base_url=silent.base_url)
        transcriber = resource.transcriber(connect=lambda: psycopg.connect(warehouse_url, autocommit=True))
        with pytest.raises(TranscriptFailure) as caught:
            transcriber.transcribe(speech("deepspeech/LDC93S1.wav"), video_id="hung")
    finally:
        silent.close()
    assert caught.value.failure_class is FailureClass.ERROR
    assert "did not answer the upload of video hung" in caught.value.message
    assert (
        "within 1 s, 2 time(s)" in caught.value.message and "CHAFFEE_OPENAI_TIMEOUT_S" in caught.value.message
    )
    assert silent.uploads == 2  # the first try and the one configured retry
    assert _ledger(warehouse_url) == []  # nothing answered, nothing paid


def test_the_default_upload_timeout_is_minutes_not_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAFFEE_OPENAI_TIMEOUT_S", raising=False)
    monkeypatch.delenv("CHAFFEE_OPENAI_MAX_RETRIES", raising=False)
    settings = OpenAIWhisperResource().settings()
    worst_case_s = settings.timeout_s * (1 + settings.max_retries)
    assert 60 <= settings.timeout_s <= 600 and worst_case_s <= 20 * 60


@pytest.mark.parametrize(
    ("name", "value"), [("CHAFFEE_OPENAI_TIMEOUT_S", "soon"), ("CHAFFEE_OPENAI_MAX_RETRIES", "-1")]
)
def test_a_malformed_timeout_setting_names_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"^{name}='{value}'"):
        OpenAIWhisperResource().settings()
