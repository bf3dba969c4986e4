"""Segment and embedding writes: idempotent per video, bulk COPY, one HNSW index per model."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from chaffee_assets.retrieval import store
from chaffee_assets.retrieval.segmenter import Segment
from chaffee_assets.warehouse import connect


def _video(conn, video_id: str = "-vid1") -> int:
    conn.execute(
        "INSERT INTO videos (video_id, source, title, published_at, url) VALUES (%s, 'library', 'T', now(), 'x')",
        (video_id,),
    )
    transcript_id = conn.execute(
        "INSERT INTO transcripts (video_id, version, source, cues) VALUES (%s, 1, 'library_file', '[]') "
        "RETURNING transcript_id",
        (video_id,),
    ).fetchone()[0]
    conn.commit()
    return transcript_id


SEGS = [Segment(i, 30.0 * i, 30.0 * i + 60, f"words about fasting number {i}") for i in range(5)]


def _counts(conn) -> tuple[int, int, int]:
    return conn.execute(
        "SELECT (SELECT count(*) FROM segments), (SELECT count(*) FROM segment_embeddings), "
        "(SELECT segments FROM segment_text_totals)"
    ).fetchone()


def test_rewriting_a_videos_segments_changes_no_count(warehouse_url):
    with connect(warehouse_url) as conn:
        tid = _video(conn)
        first = store.replace_segments(conn, "-vid1", tid, SEGS)
        store.write_embeddings(conn, "all-MiniLM-L6-v2", [(i, np.ones(384)) for i in first])
        before = _counts(conn)
        second = store.replace_segments(conn, "-vid1", tid, SEGS)
        assert len(second) == len(first) == 5
        store.write_embeddings(conn, "all-MiniLM-L6-v2", [(i, np.ones(384)) for i in second])
        assert _counts(conn) == before == (5, 5, 5)


def test_replacing_segments_drops_the_old_segments_vectors(warehouse_url):
    with connect(warehouse_url) as conn:
        tid = _video(conn)
        ids = store.replace_segments(conn, "-vid1", tid, SEGS)
        store.write_embeddings(conn, "all-MiniLM-L6-v2", [(i, np.ones(384)) for i in ids])
        store.replace_segments(conn, "-vid1", tid, SEGS[:2])
        assert _counts(conn) == (2, 0, 2)
        assert len(store.segments_missing_embeddings(conn, "all-MiniLM-L6-v2", ["-vid1"])) == 2


def test_a_failed_rewrite_leaves_the_old_segments(warehouse_url):
    with connect(warehouse_url) as conn:
        tid = _video(conn)
        store.replace_segments(conn, "-vid1", tid, SEGS)
        bad = [*SEGS[:2], Segment(2, 10.0, 5.0, "ends before it starts")]
        with pytest.raises(Exception, match="check"):
            store.replace_segments(conn, "-vid1", tid, bad)
        assert _counts(conn)[0] == 5


def test_segments_of_an_unknown_video_are_refused(warehouse_url):
    with connect(warehouse_url) as conn, pytest.raises(ValueError, match="nope"):
        store.replace_segments(conn, "nope", 1, SEGS)


def test_rewriting_embeddings_upserts_instead_of_duplicating(warehouse_url):
    with connect(warehouse_url) as conn:
        ids = store.replace_segments(conn, "-vid1", _video(conn), SEGS)
        store.write_embeddings(conn, "all-MiniLM-L6-v2", [(i, np.full(384, 0.5)) for i in ids])
        assert store.write_embeddings(conn, "all-MiniLM-L6-v2", [(i, np.full(384, 0.25)) for i in ids]) == 5
        rows = conn.execute("SELECT embedding FROM segment_embeddings").fetchall()
        assert len(rows) == 5 and all(np.allclose(r[0].to_numpy(), 0.25) for r in rows)


def test_a_write_inside_an_open_transaction_writes_only_its_own_rows(warehouse_url):
    """The staging table empties itself at commit; inside a caller's transaction each write is a
    savepoint, so a second write must not carry the first one's rows (under its own model)."""
    with connect(warehouse_url) as conn:
        ids = store.replace_segments(conn, "-vid1", _video(conn), SEGS)
        store.register_model(conn, "other-model", 384)
        conn.execute("SELECT 1")  # a transaction is open from here on
        assert conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        store.write_embeddings(conn, "all-MiniLM-L6-v2", [(i, np.full(384, 0.5)) for i in ids])
        store.write_embeddings(conn, "other-model", [(ids[0], np.full(384, 0.25))])
        conn.commit()
        by_model = dict(
            conn.execute("SELECT model, count(*) FROM segment_embeddings GROUP BY model").fetchall()
        )
        assert by_model == {"all-MiniLM-L6-v2": 5, "other-model": 1}


def test_registering_a_model_creates_its_partial_hnsw_index_once(warehouse_url):
    name = "BAAI/bge-small-en-v1.5'; DROP TABLE videos; --"
    with connect(warehouse_url) as conn:
        index = store.register_model(conn, name, 16)
        assert store.register_model(conn, name, 16) == index
        definition = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (index,)
        ).fetchone()[0]
        assert "hnsw" in definition and "vector(16)" in definition
        assert conn.execute("SELECT to_regclass('videos') IS NOT NULL").fetchone()[0]
        with pytest.raises(ValueError, match="16 dimensions"):
            store.register_model(conn, name, 32)


def test_index_names_are_safe_identifiers_and_match_the_default_index():
    assert store.hnsw_index_name("all-MiniLM-L6-v2") == "segment_embeddings_hnsw_all_minilm_l6_v2"
    long_a, long_b = "m" * 80 + "a", "m" * 80 + "b"
    assert len(store.hnsw_index_name(long_a)) <= 63
    assert store.hnsw_index_name(long_a) != store.hnsw_index_name(long_b)


def test_lexeme_statistics_follow_every_write(warehouse_url):
    with connect(warehouse_url) as conn:
        tid = _video(conn)
        store.replace_segments(conn, "-vid1", tid, SEGS)
        store.replace_segments(conn, "-vid1", tid, SEGS[:3])
        assert conn.execute("SELECT segments FROM segment_lexemes WHERE lexeme = 'fast'").fetchone()[0] == 3
        conn.execute("DELETE FROM videos")  # cascades to segments
        assert conn.execute("SELECT count(*) FROM segment_lexemes").fetchone()[0] == 0
        assert conn.execute("SELECT segments, lexemes FROM segment_text_totals").fetchone() == (0, 0)


def test_postings_follow_every_write(warehouse_url):
    """`segment_postings` (what BM25 reads) holds exactly each segment's lexemes and term
    frequencies after inserts, a re-cut, an edited text, a cascaded delete and a truncate."""
    from chaffee_assets_tests.warehouse_snapshot import consistency_problems

    def postings(conn, lexeme: str) -> list[tuple[int, int]]:
        return conn.execute(
            "SELECT segment_id, tf FROM segment_postings WHERE lexeme = %s ORDER BY segment_id", (lexeme,)
        ).fetchall()

    with connect(warehouse_url) as conn:
        tid = _video(conn)
        ids = store.replace_segments(conn, "-vid1", tid, SEGS)
        assert [tf for _, tf in postings(conn, "fast")] == [1] * 5
        ids = store.replace_segments(conn, "-vid1", tid, SEGS[:3])
        assert [sid for sid, _ in postings(conn, "fast")] == ids
        conn.execute(
            "UPDATE segments SET text = 'ketones ketones and fasting' WHERE segment_id = %s", (ids[0],)
        )
        conn.commit()
        assert postings(conn, "keton") == [(ids[0], 2)]
        assert [sid for sid, _ in postings(conn, "number")] == ids[1:]
        assert consistency_problems(warehouse_url) == []
        conn.execute("DELETE FROM videos")  # cascades to segments
        conn.commit()
        assert conn.execute("SELECT count(*) FROM segment_postings").fetchone()[0] == 0
        tid = _video(conn)
        store.replace_segments(conn, "-vid1", tid, SEGS)
        conn.execute("TRUNCATE segments CASCADE")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM segment_postings").fetchone()[0] == 0


def test_segments_already_cut_from_the_current_transcript_are_kept_with_their_vectors(warehouse_url):
    with connect(warehouse_url) as conn:
        tid = _video(conn)
        ids = store.replace_segments(conn, "-vid1", tid, SEGS)
        store.write_embeddings(conn, "all-MiniLM-L6-v2", [(i, np.ones(384)) for i in ids])
        assert store.replace_segments(conn, "-vid1", tid, SEGS, keep_current=True) is None
        kept = [r[0] for r in conn.execute("SELECT segment_id FROM segments ORDER BY ordinal")]
        assert kept == ids and _counts(conn) == (5, 5, 5)


def test_vectors_of_segments_recut_meanwhile_are_dropped_not_an_error(warehouse_url):
    # Run A computes vectors for the segments it read; run B re-cuts the video before A writes.
    with connect(warehouse_url) as conn:
        tid = _video(conn)
        stale_ids = store.replace_segments(conn, "-vid1", tid, SEGS)
        store.replace_segments(conn, "-vid1", tid, SEGS)  # run B
        store.write_embeddings(conn, "all-MiniLM-L6-v2", [(i, np.ones(384)) for i in stale_ids])
        assert _counts(conn) == (5, 0, 5)
        assert len(store.segments_missing_embeddings(conn, "all-MiniLM-L6-v2", ["-vid1"])) == 5
