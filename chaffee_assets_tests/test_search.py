"""Hybrid search through the SQL function: filters inside the query, deep links, two models, the CLI."""

from __future__ import annotations

import argparse
import itertools
import json
import uuid
from datetime import date, timedelta

import numpy as np
import psycopg
import pytest
from psycopg import sql

from chaffee_assets.retrieval.embedder import Embedder
from chaffee_assets.search import SearchOptions, search
from chaffee_assets.warehouse import connect
from chaffee_assets_tests.conftest import shared_path
from chaffee_assets_tests.retrieval_helpers import embed_all, load_library, tiny_model

# Twelve short dev-library videos published 2021–2024 (upload dates in their info.json).
VIDEOS = {
    "QmOF0crdyRU": date(2021, 9, 23),
    "BMTt8gSl13s": date(2024, 1, 3),
    "Gf-kC30SLtc": date(2022, 4, 6),
    "LTGGyQS1fZE": date(2024, 7, 29),
    "LYYyQcAJZfk": date(2024, 7, 3),
    "poOf8b2WE2g": date(2021, 4, 9),
    "KVjfFN89qvQ": date(2023, 5, 21),
    "dzOvi0Aa2EA": date(2024, 6, 29),
    "nwSkFq4tyC0": date(2023, 9, 30),
    "gMRph_BvHB4": date(2023, 4, 4),
    "DtmwtjOoSYU": date(2021, 5, 6),
    "qdk7XuBgSjw": date(2022, 11, 21),
}
ALL = SearchOptions(max_per_video=None, collapse_overlaps=False)
ALL_FIELDS = {"max_per_video": None, "collapse_overlaps": False}
MODES = ("hybrid", "vector", "text")
QUERY = "how does sleep and light affect the brain and health"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="module")
def library_url(embedded_admin_url: str, embedder: Embedder) -> str:
    """A warehouse holding the twelve videos, segmented and embedded with MiniLM."""
    from chaffee_assets.warehouse.migrate import upgrade

    name = f"search_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(embedded_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = embedded_admin_url.replace("/postgres?", f"/{name}?", 1)
    upgrade(url)
    with connect(url) as conn:
        load_library(conn, shared_path("eval", "huberman_dev", "library"), list(VIDEOS), embedder)
    return url


@pytest.fixture
def conn(library_url: str):
    with connect(library_url, autocommit=True) as c:
        yield c


def _segments(conn, where: str = "true", params: tuple = ()) -> int:
    return conn.execute(
        f"SELECT count(*) FROM segments s JOIN videos v USING (video_id) WHERE {where}", params
    ).fetchone()[0]


@pytest.mark.parametrize("mode", MODES)
def test_hits_carry_title_times_text_score_and_a_deep_link(conn, embedder, mode):
    hits = search(QUERY, 5, mode, conn=conn, embedder=embedder)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert hit.video_id in VIDEOS and hit.title and hit.text and hit.end_s >= hit.start_s
        assert hit.link == f"https://www.youtube.com/watch?v={hit.video_id}&t={int(hit.start_s)}s"


@pytest.mark.parametrize("mode", MODES)
def test_a_date_range_returns_only_its_videos_and_k_of_them(conn, embedder, mode):
    start, end = date(2024, 1, 1), date(2024, 12, 31)
    in_range = _segments(conn, "v.partition_date BETWEEN %s AND %s", (start, end))
    k = 10
    assert in_range >= k  # the case the rule is about: enough exist, so k must come back
    hits = search(
        QUERY, k, mode, published_from=start, published_to=end, options=ALL, conn=conn, embedder=embedder
    )
    assert {h.video_id for h in hits} <= {v for v, d in VIDEOS.items() if start <= d <= end}
    assert all(start <= h.published_at.date() <= end for h in hits)
    if mode != "text":  # the text ranking only returns segments sharing a word with the query
        assert len(hits) == k


@pytest.mark.parametrize("mode", ("hybrid", "vector"))
def test_a_video_filter_returns_that_video_only_and_all_of_it_when_k_is_large(conn, embedder, mode):
    video = "LYYyQcAJZfk"
    n = _segments(conn, "s.video_id = %s", (video,))
    hits = search(QUERY, n + 5, mode, video_ids=[video], options=ALL, conn=conn, embedder=embedder)
    assert len(hits) == n and {h.video_id for h in hits} == {video}


@pytest.mark.parametrize(
    "filters",
    [
        {"published_from": date(2023, 1, 1), "published_to": date(2023, 12, 31)},
        {"video_ids": ["QmOF0crdyRU", "nwSkFq4tyC0", "qdk7XuBgSjw"]},
        {"published_from": date(2030, 1, 1)},  # allows nothing
    ],
)
def test_a_filtered_vector_ranking_is_the_exact_nearest_of_the_filter_s_segments(conn, embedder, filters):
    # The reference is computed here, in numpy, from every stored vector the filter allows.
    start, end = filters.get("published_from", date.min), filters.get("published_to", date.max)
    allowed = {v for v, d in VIDEOS.items() if start <= d <= end and v in filters.get("video_ids", VIDEOS)}
    rows = conn.execute(
        "SELECT e.segment_id, s.video_id, e.embedding::text FROM segment_embeddings e "
        "JOIN segments s USING (segment_id) WHERE e.model = 'all-MiniLM-L6-v2'"
    ).fetchall()
    ids = np.array([r[0] for r in rows if r[1] in allowed], dtype=np.int64)
    vectors = np.array([json.loads(r[2]) for r in rows if r[1] in allowed]).reshape(len(ids), 384)
    question = embedder.encode_queries([QUERY])[0].astype(np.float64)
    cosine = vectors @ question / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(question))
    expected = [int(ids[i]) for i in np.argsort(-cosine, kind="stable")[:15]]

    hits = search(QUERY, 15, "vector", options=ALL, conn=conn, embedder=embedder, **filters)

    assert [h.segment_id for h in hits] == expected
    assert [h.similarity for h in hits] == pytest.approx(sorted(cosine, reverse=True)[:15], abs=1e-5)


def test_results_are_grouped_so_one_video_does_not_fill_the_page(conn, embedder):
    hits = search(QUERY, 10, "hybrid", options=SearchOptions(max_per_video=2), conn=conn, embedder=embedder)
    per_video: dict[str, int] = {}
    for hit in hits:
        per_video[hit.video_id] = per_video.get(hit.video_id, 0) + 1
    assert max(per_video.values()) <= 2 and len(hits) == 10


def test_default_results_never_overlap_within_a_video(conn, embedder):
    hits = search(QUERY, 10, "hybrid", conn=conn, embedder=embedder)
    for a in hits:
        for b in hits:
            if a is not b and a.video_id == b.video_id:
                assert a.end_s <= b.start_s or b.end_s <= a.start_s


def test_a_second_model_embeds_beside_the_first_and_both_are_searchable(conn, embedder, tmp_path_factory):
    path = tiny_model(tmp_path_factory.mktemp("tiny"))
    tiny = Embedder(str(path))
    assert tiny.model_name == "tiny-random-st" and tiny.dimension == 32
    with connect(conn.info.dsn) as writer:
        embed_all(writer, tiny)
    coverage = dict(conn.execute("SELECT model, segments_embedded FROM embedding_coverage").fetchall())
    total = _segments(conn)
    assert coverage == {"all-MiniLM-L6-v2": total, "tiny-random-st": total}
    assert len(search(QUERY, 5, "vector", model=str(path), conn=conn, embedder=tiny)) == 5
    assert len(search(QUERY, 5, "vector", conn=conn, embedder=embedder)) == 5
    index = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'segment_embeddings_hnsw_tiny_random_st'"
    ).fetchone()
    assert index and "vector(32)" in index[0]


def test_hnsw_results_agree_with_the_exact_scan(conn, embedder):
    approx = search(QUERY, 10, "vector", options=ALL, conn=conn, embedder=embedder)
    exact = search(
        QUERY,
        10,
        "vector",
        options=SearchOptions(max_per_video=None, collapse_overlaps=False, exact=True),
        conn=conn,
        embedder=embedder,
    )
    assert len({h.segment_id for h in approx} & {h.segment_id for h in exact}) >= 9


def test_vector_search_with_an_unregistered_model_is_refused(conn, embedder):
    with pytest.raises(psycopg.Error, match="not registered"):
        search(QUERY, 5, "vector", model="no-such-model", conn=conn, embedder=embedder)


def test_the_search_function_is_documented_for_sql_users(conn):
    doc = conn.execute("SELECT obj_description('search_segments'::regproc, 'pg_proc')").fetchone()[0]
    assert "reciprocal rank fusion" in doc and "published_from" in doc


def _cli() -> argparse.ArgumentParser:
    from chaffee_assets.cli import search_cmd

    parser = argparse.ArgumentParser(prog="chaffee")
    search_cmd.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_chaffee_search_prints_titles_timestamps_links_and_highlights(library_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", library_url)
    args = _cli().parse_args(["search", "sleep light brain", "-k", "3"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "https://www.youtube.com/watch?v=" in out and "[" in out  # highlighted words
    assert any(line.strip()[:5].count(":") == 1 for line in out.splitlines())  # mm:ss


def test_chaffee_search_json_is_a_list_of_hits(library_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", library_url)
    args = _cli().parse_args(
        ["search", "health", "-k", "4", "--mode", "text", "--from", "2024-01-01", "--json"]
    )
    assert args.handler(args) == 0
    hits = json.loads(capsys.readouterr().out)
    assert 0 < len(hits) <= 4 and all(h["published_at"] >= "2024-01-01" for h in hits)
    assert {"video_id", "title", "start_s", "end_s", "text", "score", "link"} <= set(hits[0])


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "x", "-k", "0"],
        ["search", "x", "--from", "2024-02-01", "--to", "2024-01-01"],
        ["search", "sleep", "--model", "no-such-model", "--mode", "vector"],
    ],
)
def test_chaffee_search_errors_are_one_line_and_exit_2(library_url, monkeypatch, capsys, argv):
    monkeypatch.setenv("DATABASE_URL", library_url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = _cli().parse_args(argv)
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


NOT_IN_THE_LIBRARY = ["🥩🥩🥩", "the and of to a", "who won the G2 vs T1 game at MSI"]


@pytest.mark.parametrize("query", NOT_IN_THE_LIBRARY)
def test_a_question_the_library_does_not_answer_gets_only_weakly_related_moments(conn, embedder, query):
    from chaffee_assets.search import nothing_relevant

    hits = search(query, 5, "hybrid", conn=conn, embedder=embedder)
    assert hits  # the nearest moments still come back …
    assert all(h.weak is True and h.similarity < 0.35 for h in hits)  # … each marked as such
    assert nothing_relevant(hits)


def test_a_question_the_library_answers_is_not_weak(conn, embedder):
    from chaffee_assets.search import nothing_relevant

    hits = search(QUERY, 5, "hybrid", conn=conn, embedder=embedder)
    assert not nothing_relevant(hits)
    assert hits[0].weak is False and hits[0].similarity >= 0.35
    assert all(h.similarity is not None for h in hits)  # text-only finds carry their cosine too


def test_text_mode_without_a_question_vector_judges_nothing(conn):
    hits = search("light and sleep", 5, "text", conn=conn)
    assert hits and all(h.similarity is None and h.weak is None and h.text_score > 0 for h in hits)


def test_reciprocal_rank_fusion_stays_available_and_bad_fusion_is_refused(conn, embedder):
    rrf = search(QUERY, 5, "hybrid", options=SearchOptions(fusion="rrf"), conn=conn, embedder=embedder)
    convex = search(QUERY, 5, "hybrid", conn=conn, embedder=embedder)
    assert len(rrf) == 5 and all(0 < h.score <= 2 / 31 for h in rrf)  # 1/(30 + rank), twice at most
    assert all(0 <= h.score <= 1 for h in convex)
    with pytest.raises(psycopg.Error, match="fusion must be convex or rrf"):
        search(QUERY, 5, "hybrid", options=SearchOptions(fusion="max"), conn=conn, embedder=embedder)


def test_the_candidate_walk_matches_a_compound_lexeme_and_nothing_else(conn):
    """The BM25 walk reads each lexeme's own postings: `sleep-wak` (from "sleep-wake") must not
    also match every segment that says "sleep", which spent the walk's budget on postings no
    question asked for."""
    match = "SELECT to_tsvector('english', %s) @@ lexeme_tsquery(%s)"
    assert conn.execute(match, ("the sleep-wake cycle", "sleep-wak")).fetchone()[0]
    assert not conn.execute(match, ("I sleep well", "sleep-wak")).fetchone()[0]
    assert conn.execute(match, ("I sleep well", "sleep")).fetchone()[0]
    for odd in ("it's", "back\\slash", "a'b\\c"):  # quotes and backslashes are data, not syntax
        assert conn.execute("SELECT lexeme_tsquery(%s)::text", (odd,)).fetchone()[0]


def test_the_python_defaults_are_the_sql_function_s_defaults(conn):
    """SQL consumers and `search()` rank alike: every knob both have defaults to the same value."""
    arguments = conn.execute("SELECT pg_get_function_arguments('search_segments'::regproc)").fetchone()[0]
    sql_defaults = {}
    for argument in arguments.split(", "):
        name, _, rest = argument.partition(" ")
        if " DEFAULT " in rest:
            sql_defaults[name] = rest.split(" DEFAULT ", 1)[1].split("::", 1)[0].strip("'")
    python_defaults = SearchOptions()
    shared = {"max_per_video", "candidates", "fusion", "alpha", "bm25_k1", "bm25_b", "rrf_k", "exact"}
    assert shared <= set(sql_defaults), sql_defaults
    for name in shared:
        value = getattr(python_defaults, name)
        assert str(value).lower() == sql_defaults[name].lower(), (name, value, sql_defaults[name])


def test_bm25_parameters_change_the_text_ranking_and_bad_ones_are_refused(conn):
    def ranking(**options):
        hits = search(QUERY, 10, "text", options=SearchOptions(**{**ALL_FIELDS, **options}), conn=conn)
        return [h.segment_id for h in hits]

    assert ranking() == ranking(bm25_k1=0.9, bm25_b=0.4)  # the defaults
    assert ranking() != ranking(bm25_k1=3.0, bm25_b=1.0)  # saturation and length now weigh otherwise
    with pytest.raises(psycopg.Error, match="bm25_b between 0 and 1"):
        ranking(bm25_b=1.5)


def _reference_bm25(conn, query: str, segment_id: int, k1: float = 0.9, b: float = 0.4) -> float:
    """BM25 of one segment over every lexeme of the question, from the warehouse's statistics and
    the segment's own postings, outside the search function."""
    segments, words = conn.execute("SELECT segments, words FROM segment_text_totals").fetchone()
    avglen = max(words / segments, 1)
    lexemes = conn.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", (query,)).fetchone()[0]
    total = 0.0
    for lexeme in set(lexemes):
        df = conn.execute(
            "SELECT coalesce(max(segments), 0) FROM segment_lexemes WHERE lexeme = %s", (lexeme,)
        )
        df = df.fetchone()[0]
        posting = conn.execute(
            "SELECT tf, words FROM segment_postings WHERE lexeme = %s AND segment_id = %s",
            (lexeme, segment_id),
        ).fetchone()
        if posting:
            tf, length = posting
            idf = np.log(1 + (segments - df + 0.5) / (df + 0.5))
            total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avglen))
    return total


@pytest.mark.parametrize("mode", ("text", "hybrid"))
@pytest.mark.parametrize(
    "filters",
    [
        {},  # the walk covers few words: every word's postings are read for the candidates
        {"published_from": date(2023, 1, 1), "published_to": date(2023, 12, 31)},  # 3 of 12 videos
        {"video_ids": ["nwSkFq4tyC0", "Gf-kC30SLtc"]},
    ],
)
def test_every_hit_s_bm25_counts_every_word_of_the_question(conn, embedder, mode, filters):
    """Under a filter of at most a quarter of the library the walked words' BM25 is summed during
    the walk and only the other words' postings are read for the candidates; unfiltered, every
    word's are. Either way each hit's BM25 is the formula over every word of the question."""
    hits = search(QUERY, 20, mode, options=ALL, conn=conn, embedder=embedder, reranker="", **filters)
    scored = [h for h in hits if h.text_score is not None]
    assert len(scored) >= 5
    for hit in scored:
        assert hit.text_score == pytest.approx(_reference_bm25(conn, QUERY, hit.segment_id), rel=1e-9)


def test_chaffee_search_says_when_nothing_in_the_library_is_closely_related(library_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", library_url)
    args = _cli().parse_args(["search", "🥩🥩🥩", "-k", "3"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("Nothing in the library is closely related to '🥩🥩🥩'; the nearest moments are:")
    assert out.count("(weakly related)") == 3


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["search", "zzyzx", "--mode", "text"],
            "no matches: none of the query's words occur in the transcripts; try other words or --mode hybrid",
        ),
        (
            ["search", "zzyzx", "--mode", "text", "--to", "2000-01-01"],
            "no matches: none of the query's words occur in the transcripts; widen --from/--to or drop --video",
        ),
        (
            ["search", "sleep", "--to", "2000-01-01"],
            "no matches in that range: widen --from/--to or drop --video",
        ),
    ],
)
def test_the_no_match_hint_says_what_is_true(library_url, monkeypatch, capsys, argv, expected):
    monkeypatch.setenv("DATABASE_URL", library_url)
    args = _cli().parse_args(argv)
    assert args.handler(args) == 0
    assert capsys.readouterr().out.strip() == expected


class _FixedVector:
    """A query embedder that returns one vector, so the test decides every cosine."""

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector

    def encode_queries(self, texts):
        return [self.vector for _ in texts]


def _video_and_transcript(conn, video_id: str, published: str) -> int:
    """A video row and an empty transcript for it, as the segments' foreign keys need; returns the
    transcript's id."""
    conn.execute(
        "INSERT INTO videos (video_id, source, title, published_at, url) VALUES (%s, 'library', %s, %s, 'x')",
        (video_id, f"Talk {video_id}", published),
    )
    return conn.execute(
        "INSERT INTO transcripts (video_id, version, source, cues) VALUES (%s, 1, 'library_file', '[]') "
        "RETURNING transcript_id",
        (video_id,),
    ).fetchone()[0]


def _walk_library(conn) -> tuple[int, list[str]]:
    """2 000 segments in 20 videos: 8 published in 2019, 12 in 2024. The question's rare words
    "aardvark" and "buffalo" are said only in 2019 (450 segments each); "zebra" (500 segments) once
    in 2024, in segment `target`, whose vector is orthogonal to the question's, and 499 times in 2019.
    Returns `target` and the 2024 videos."""
    from chaffee_assets.retrieval import store
    from chaffee_assets.retrieval.segmenter import Segment

    store.register_model(conn, "all-MiniLM-L6-v2", 384)
    rng = np.random.default_rng(11)
    old = [f"old{n:02d}" for n in range(8)]
    new = [f"new{n:02d}" for n in range(12)]
    target = None
    for number, video in enumerate(old + new):
        transcript_id = _video_and_transcript(conn, video, "2019-06-01" if video in old else "2024-06-01")
        texts = []
        for i in range(100):
            n = 100 * number + i  # 0–799 are the 2019 segments
            words = [f"filler talk {video}"]
            words += ["aardvark"] * (n < 450) + ["buffalo"] * (350 <= n < 800) + ["zebra"] * (n < 499)
            texts.append(" ".join(words))
        if video == "new05":
            texts[40] = "the zebra"
        ids = store.replace_segments(
            conn, video, transcript_id, [Segment(i, 10.0 * i, 10.0 * i + 10, t) for i, t in enumerate(texts)]
        )
        vectors = rng.normal(size=(100, 384)) * 0.1
        vectors[:, 0] += 1.0  # every segment near the question …
        if video == "new05":
            target = ids[40]
            vectors[40] = np.eye(384)[1]  # … but the target, which only its word can bring
        store.write_embeddings(conn, "all-MiniLM-L6-v2", list(zip(ids, vectors, strict=True)))
    conn.commit()
    return target, new


def test_a_filtered_hybrid_walk_reads_the_postings_an_unfiltered_one_would_in_a_library_the_filter_s_size(
    warehouse_url,
):
    """Depth 5 gives an unfiltered walk a budget of 500 postings, counted in whole-library document
    frequencies. Under a filter the budget is scaled by the inverse of the filter's share: a filter
    of 12 of 20 videos gets 833, which "aardvark" and "buffalo" (900, all outside it) exhaust before
    "zebra"; one video's filter gets 10 000 and reaches it. Text mode's walk, its only source of
    candidates, reads three times as many: 2 500 under the 12 videos' filter, which reaches "zebra"."""
    question = _FixedVector(np.eye(384)[0])
    options = SearchOptions(candidates=1, alpha=0.2)  # depth 5; the words weigh more than the cosine
    with connect(warehouse_url) as conn:
        target, new = _walk_library(conn)

        def ids(mode, **filters):
            hits = search(
                "aardvark buffalo zebra",
                5,
                mode,
                options=options,
                conn=conn,
                embedder=question,
                reranker="",
                **filters,
            )
            return [h.segment_id for h in hits], {h.video_id for h in hits}

        wide, videos = ids("hybrid", published_from=date(2024, 1, 1))
        assert len(wide) == 5 and videos <= set(new)
        assert target not in wide  # the walk stopped at its budget; the vector ranking filled the page
        assert ids("text", published_from=date(2024, 1, 1))[0] == [target]
        narrow, _ = ids("hybrid", video_ids=["new05"])
        assert narrow[0] == target


def test_a_filtered_text_search_whose_budget_finds_too_few_walks_every_word(warehouse_url):
    """Depth 1, so the walk keeps 5 candidates. Under the 2024 filter (12 of 20 videos) text mode's
    budget is 500 postings, which "aardvark" and "buffalo" (450 segments each) take before "zebra",
    and none of their segments is inside the filter: the budgeted walk finds nothing there. It is
    redone over every informative word and finds the one 2024 "zebra", the only segment inside the
    filter that holds a word of the question; without the second walk the page is empty.
    Unfiltered, the best hit is a 2019 segment that holds all three words."""
    with connect(warehouse_url) as conn:
        target, new = _walk_library(conn)

        def text_search(**filters):
            return search(
                "aardvark buffalo zebra",
                1,
                "text",
                options=SearchOptions(candidates=1),
                conn=conn,
                reranker="",
                **filters,
            )

        (unfiltered,) = text_search()
        assert unfiltered.video_id.startswith("old")
        assert [h.segment_id for h in text_search(published_from=date(2024, 1, 1))] == [target]
        assert [h.segment_id for h in text_search(video_ids=new)] == [target]


def test_a_filter_wider_than_the_exact_scan_keeps_its_bounds(warehouse_url):
    """A filter of more than 20 000 segments is ranked by the HNSW path's query, which takes a date
    filter as dates and a video filter as videos. 45 videos of 500 segments, published a month
    apart; the question's nearest segments are in the first and last videos a filter allows and in
    the two just outside it. Both bounds are inclusive, the videos outside never appear, and the
    hits are those of the exact scan of the filter's segments."""
    from chaffee_assets.retrieval import store
    from chaffee_assets.retrieval.segmenter import Segment

    rng = np.random.default_rng(5)
    question = np.eye(384)[0]
    published = {f"v{n:02d}": date(2020, 1, 1) + timedelta(days=31 * n) for n in range(45)}
    with connect(warehouse_url) as conn:
        store.register_model(conn, "all-MiniLM-L6-v2", 384)
        # Without the HNSW index the same query orders by an exact sort: 22 500 HNSW inserts took
        # 86 s here, and what is under test is the query's filter, not the index.
        conn.execute(f"DROP INDEX {store.hnsw_index_name('all-MiniLM-L6-v2')}")
        for n, (video, day) in enumerate(published.items()):
            transcript_id = _video_and_transcript(conn, video, f"{day} 12:00:00+00")
            segments = [Segment(i, 10.0 * i, 10.0 * i + 10, f"talk {i % 50}") for i in range(500)]
            ids = store.replace_segments(conn, video, transcript_id, segments)
            vectors = rng.normal(size=(500, 384))
            if n in (1, 2, 42, 43):  # the bounds' videos and their outer neighbours
                vectors[:3] = question + 0.01 * rng.normal(size=(3, 384))
            store.write_embeddings(conn, "all-MiniLM-L6-v2", list(zip(ids, vectors, strict=True)))
        conn.commit()

        inside = {f"v{n:02d}" for n in range(2, 43)}  # 41 videos, 20 500 segments
        for mode, filters in itertools.product(
            ("vector", "hybrid"),
            (
                {"published_from": published["v02"], "published_to": published["v42"]},
                {"video_ids": sorted(inside)},
            ),
        ):

            def top(exact: bool, mode=mode, filters=filters):
                options = SearchOptions(max_per_video=None, collapse_overlaps=False, exact=exact)
                hits = search(
                    "talk",
                    6,
                    mode,
                    options=options,
                    conn=conn,
                    embedder=_FixedVector(question),
                    reranker="",
                    **filters,
                )
                return [(h.video_id, h.segment_id) for h in hits]

            wide_path = top(exact=False)
            assert {video for video, _ in wide_path} == {"v02", "v42"}, (mode, filters)
            assert wide_path == top(exact=True), (mode, filters)


def test_a_filter_s_vectors_are_shortlisted_by_sign_bits_beyond_five_times_the_depth(warehouse_url):
    """The filtered vector ranking reads whole only the 5 x depth segments whose sign bits are
    nearest the question's. Here the question's nearest segment by cosine (0.71) has the opposite
    sign in half its dimensions, and every other segment has the question's signs but a cosine
    of 0.05. Depth 10: a filter of 50 segments or fewer is ranked exactly, so the nearest is
    found; a filter of 61 shortlists 50 of its 60 look-alikes and leaves it out, and `exact`
    reads every vector and finds it again."""
    from chaffee_assets.retrieval import store
    from chaffee_assets.retrieval.segmenter import Segment

    question = np.ones(384) / np.sqrt(384)
    nearest = np.ones(384)
    nearest[:192] = -1e-3  # cosine 0.71, but half the signs flipped
    with connect(warehouse_url) as conn:
        store.register_model(conn, "all-MiniLM-L6-v2", 384)
        targets = {}
        for video, look_alikes in (("small", 49), ("wide", 60)):
            transcript_id = _video_and_transcript(conn, video, "2024-03-01 12:00:00+00")
            segments = [Segment(i, 10.0 * i, 10.0 * i + 10, f"talk {i}") for i in range(look_alikes + 1)]
            ids = store.replace_segments(conn, video, transcript_id, segments)
            vectors = np.full((look_alikes + 1, 384), 1e-3)
            vectors[np.arange(look_alikes), np.arange(look_alikes)] = 10.0  # cosine 0.05, same signs
            vectors[look_alikes] = nearest
            store.write_embeddings(conn, "all-MiniLM-L6-v2", list(zip(ids, vectors, strict=True)))
            targets[video] = ids[look_alikes]
        conn.commit()

        def best(video: str, exact: bool = False) -> int:
            (hit,) = search(
                "talk",
                1,
                "vector",
                options=SearchOptions(
                    candidates=10, max_per_video=None, collapse_overlaps=False, exact=exact
                ),
                conn=conn,
                embedder=_FixedVector(question),
                reranker="",
                video_ids=[video],
            )
            return hit.segment_id

        assert best("small") == targets["small"]
        assert best("wide") != targets["wide"]
        assert best("wide", exact=True) == targets["wide"]
