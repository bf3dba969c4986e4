"""The JSON API and the server-rendered page on a real warehouse: the sample library plus a video whose
title and captions hold markup, quotes and emoji."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from chaffee_assets.web import create_app
from chaffee_assets.web.protection import ANSWER_COST
from chaffee_assets.web.settings import WebSettings
from chaffee_assets_tests.conftest import sample_copy
from chaffee_assets_tests.web_helpers import (
    HOSTILE_ID,
    HOSTILE_QUERY,
    HOSTILE_TITLE,
    HOSTILE_WORDS,
    REPO,
    SAMPLE_IDS,
    new_database,
)

LDL_QUESTION = "does high LDL cholesterol cause heart attacks"


@pytest.fixture(scope="module")
def sample_url(embedded_admin_url: str, sample_template_url: str) -> str:
    return sample_copy(embedded_admin_url, sample_template_url, "web")


@pytest.fixture(scope="module")
def client(sample_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(WebSettings(rate_limit_per_minute=10_000), database_url=sample_url)) as c:
        yield c


def _forget_rate_limits(url: str) -> None:
    # The rate limit is kept in the warehouse for every process: each test's server starts with no
    # client seen this minute, as the tests before it all speak as the same client.
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('web_rate_limit') IS NOT NULL").fetchone()[0]:
            conn.execute("DELETE FROM web_rate_limit")


def _client(url: str, **settings: object) -> TestClient:
    _forget_rate_limits(url)
    return TestClient(create_app(WebSettings(**settings), database_url=url))  # type: ignore[arg-type]


# -- /api/search -----------------------------------------------------------------------------------


def test_search_returns_the_documented_fields_best_first(client: TestClient) -> None:
    response = client.get("/api/search", params={"q": LDL_QUESTION, "k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == LDL_QUESTION and body["mode"] == "hybrid" and body["k"] == 5
    assert body["model"] == "all-MiniLM-L6-v2"
    hits = body["hits"]
    assert 1 <= len(hits) <= 5
    for hit in hits:
        assert {"video_id", "title", "published_at", "start_s", "end_s", "text", "link", "score"} <= set(hit)
        assert hit["link"] == f"https://www.youtube.com/watch?v={hit['video_id']}&t={int(hit['start_s'])}s"
        assert hit["end_s"] >= hit["start_s"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert hits[0]["video_id"] == "smplLDL_hrt"


def test_search_passes_through_every_field_the_search_gives(client: TestClient, sample_url: str) -> None:
    from chaffee_assets.search import search
    from chaffee_assets.warehouse import connect

    with connect(sample_url) as conn:
        direct = search(LDL_QUESTION, 3, conn=conn)[0].as_dict()
    served = client.get("/api/search", params={"q": LDL_QUESTION, "k": 3}).json()["hits"][0]
    assert set(direct) <= set(served)
    assert served["segment_id"] == direct["segment_id"] and served["text"] == direct["text"]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_every_ranking_mode_answers(client: TestClient, mode: str) -> None:
    body = client.get("/api/search", params={"q": "seed oils linoleic acid", "mode": mode, "k": 3}).json()
    assert body["mode"] == mode
    assert body["hits"] and body["hits"][0]["video_id"] == "smplSeedOil"


def test_date_filters_keep_only_videos_published_between_them(client: TestClient) -> None:
    params = {"q": "carnivore diet", "k": 20, "from": "2024-03-01", "to": "2024-05-31"}
    body = client.get("/api/search", params=params).json()
    assert body["from"] == "2024-03-01" and body["to"] == "2024-05-31"
    assert body["hits"]
    assert all("2024-03-01" <= h["published_at"][:10] <= "2024-05-31" for h in body["hits"])
    assert {h["video_id"] for h in body["hits"]} <= {"-smplOxLect", "smplSeedOil", "smplKetoWk1"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": ""}, "the question is empty"),
        ({"q": "   "}, "the question is empty"),
        ({"q": "x" * 301}, "the limit is 300"),
        ({"q": "salt", "k": "0"}, "k must be between 1 and 50, not 0"),
        ({"q": "salt", "k": "51"}, "k must be between 1 and 50, not 51"),
        ({"q": "salt", "k": "ten"}, "k must be a whole number, not 'ten'"),
        ({"q": "salt", "mode": "magic"}, "mode must be one of hybrid, vector, text, not 'magic'"),
        ({"q": "salt", "from": "2024-02-30"}, "the 'from' date must be YYYY-MM-DD, not '2024-02-30'"),
        (
            {"q": "salt", "from": "2024-01-01T00:00"},
            "the 'from' date must be YYYY-MM-DD, not '2024-01-01T00:00'",
        ),
        ({"q": "salt", "from": "2024-06-01", "to": "2024-01-01"}, "is after the 'to' date"),
        ({}, "the question is empty"),
    ],
)
def test_bad_input_is_a_400_with_a_one_line_json_message(
    client: TestClient, params: dict, message: str
) -> None:
    response = client.get("/api/search", params=params)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]
    assert "\n" not in response.json()["error"]


def test_hostile_title_and_caption_come_back_intact_in_json(client: TestClient) -> None:
    hits = client.get("/api/search", params={"q": HOSTILE_QUERY, "mode": "text"}).json()["hits"]
    assert hits and hits[0]["video_id"] == HOSTILE_ID
    assert hits[0]["title"] == HOSTILE_TITLE
    assert hits[0]["text"].endswith(HOSTILE_WORDS)


# -- the page ----------------------------------------------------------------------------------------


def test_page_renders_moments_grouped_by_video_with_deep_links(client: TestClient) -> None:
    response = client.get("/", params={"q": LDL_QUESTION})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    api_hits = client.get("/api/search", params={"q": LDL_QUESTION}).json()["hits"]
    titles = re.findall(r'<h2 class="video-title">(.*?)</h2>', page)
    # One heading per video, in the order of each video's best hit.
    assert titles == [str(escape(t)) for t in dict.fromkeys(h["title"] for h in api_hits)]
    for hit in api_hits:
        second = int(hit["start_s"])
        link = escape(hit["link"])
        assert f'href="{link}" data-video-id="{hit["video_id"]}"' in page
        assert f'data-start="{second}"' in page
        assert f">{second // 60:02d}:{second % 60:02d}</a>" in page
    assert "<mark>LDL</mark>" in page


def test_page_works_from_its_url_alone_with_filters_kept_in_the_form(client: TestClient) -> None:
    page = client.get("/?q=salt&mode=text&from=2024-05-01&to=2024-05-31").text
    assert 'value="2024-05-01"' in page and 'value="2024-05-31"' in page
    assert '<option value="text" selected>' in page
    assert "smplKetoWk1" in page and "smplLDL_hrt" not in page


def test_hostile_title_and_caption_are_escaped_on_the_page(client: TestClient) -> None:
    page = client.get("/", params={"q": HOSTILE_QUERY, "mode": "text"}).text
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold</b>" not in page
    assert str(escape(HOSTILE_TITLE)) in page
    assert str(escape('<img src=x onerror=alert("caption")>')) in page
    assert "🥩" in page
    # The only scripts on the page are the server's own file.
    assert re.findall(r"<script[^>]*>", page) == [re.search(r"<script[^>]*>", page).group(0)]
    assert 'src="/static/enhance.js?v=' in page


def test_bad_input_on_the_page_is_shown_with_a_400(client: TestClient) -> None:
    response = client.get("/", params={"q": "salt", "from": "yesterday"})
    assert response.status_code == 400
    assert "the &#39;from&#39; date must be YYYY-MM-DD" in response.text


def test_home_page_has_the_search_box_and_counts_what_is_indexed(client: TestClient) -> None:
    page = client.get("/").text
    assert '<input id="q" name="q" type="search"' in page
    assert f"{len(SAMPLE_IDS) + 1} videos" in page


def test_empty_warehouse_page_says_nothing_is_indexed(embedded_admin_url: str) -> None:
    with _client(new_database(embedded_admin_url, "webempty")) as empty:
        assert "Nothing is indexed yet" in empty.get("/").text
        assert empty.get("/api/search", params={"q": "salt"}).json()["hits"] == []
        health = empty.get("/healthz").json()
        assert health["status"] == "ok" and health["segments"] == 0


# -- protection ------------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/?q=salt", "/api/search?q=salt", "/healthz", "/api/search?q="):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "frame-src https://www.youtube-nocookie.com" in policy
        assert "unsafe-inline" not in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_static_files_are_versioned_and_cacheable(client: TestClient) -> None:
    page = client.get("/").text
    css = re.search(r'href="(/static/style\.css\?v=[0-9a-f]{12})"', page).group(1)
    response = client.get(css)
    assert response.status_code == 200 and "max-age" in response.headers["cache-control"]


def test_rate_limit_answers_429_with_retry_after(sample_url: str) -> None:
    with _client(sample_url, rate_limit_per_minute=3) as limited:
        statuses = [
            limited.get("/api/search", params={"q": "salt", "mode": "text"}).status_code for _ in range(3)
        ]
        refused = limited.get("/api/search", params={"q": "salt", "mode": "text"})
        page = limited.get("/", params={"q": "salt"})
        health = limited.get("/healthz")
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "3 per minute" in refused.json()["error"]
    assert page.status_code == 429 and "too many requests" in page.text
    assert health.status_code == 200  # health checks are never limited


def test_an_answer_counts_as_several_searches(sample_url: str) -> None:
    with _client(sample_url, rate_limit_per_minute=ANSWER_COST + 1) as limited:
        first = limited.get("/api/answer", params={"q": "salt"})
        searches = [
            limited.get("/api/search", params={"q": "salt", "mode": "text"}).status_code for _ in range(2)
        ]
    assert first.status_code == 503  # not configured, but it was counted
    assert searches == [200, 429]


def test_openapi_schema_documents_both_endpoints(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    assert {"/api/search", "/api/answer", "/healthz"} <= set(schema["paths"])
    parameters = {p["name"] for p in schema["paths"]["/api/search"]["get"]["parameters"]}
    assert parameters == {"q", "k", "mode", "from", "to", "speaker"}
    assert "503" in schema["paths"]["/api/answer"]["get"]["responses"]


def test_unknown_api_path_is_a_json_404(client: TestClient) -> None:
    response = client.get("/api/nothing")
    assert response.status_code == 404 and response.json() == {"error": "no such page"}


def test_health_reports_counts_and_why_answers_are_off(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["videos"] == len(SAMPLE_IDS) + 1
    assert health["embedded_segments"] == health["segments"] > 0
    assert "OPENAI_API_KEY" in health["answers"]


def test_the_web_app_never_imports_dagster(sample_url: str) -> None:
    program = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from chaffee_assets.web import create_app\n"
        "with TestClient(create_app()) as client:\n"
        "    for path in ('/api/search', '/'):\n"
        "        response = client.get(path, params={'q': 'salt'})\n"
        "        assert response.status_code == 200, (path, response.status_code, response.text[:300])\n"
        "code_location = ('dagster', 'chaffee_assets.defs', 'chaffee_assets.definitions')\n"
        "print(sorted(m for m in sys.modules if m.startswith(code_location)))\n"
    )
    env = {**os.environ, "DATABASE_URL": sample_url}
    _forget_rate_limits(sample_url)  # this server runs with the default limit
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
