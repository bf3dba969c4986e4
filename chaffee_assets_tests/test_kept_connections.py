"""Warehouse connections kept between asset steps: reused while healthy, never after a failure,
replaced when the server ended them, and never more than a few left open."""

from __future__ import annotations

import psycopg
import pytest

from chaffee_assets.warehouse.kept_connections import KEPT, close_kept_connections, warehouse_connection

from .conftest import _fresh_database


def _backend(url: str) -> int:
    with warehouse_connection(url) as conn:
        return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


@pytest.fixture(autouse=True)
def _nothing_kept_between_tests():
    close_kept_connections()
    yield
    close_kept_connections()


def test_a_finished_session_s_connection_serves_the_next(warehouse_url):
    first = _backend(warehouse_url)
    assert _backend(warehouse_url) == first
    with warehouse_connection(warehouse_url) as conn:
        # pgvector's types stay registered on the kept connection.
        assert conn.execute("SELECT '[1,2,3]'::vector").fetchone()[0].to_list() == [1, 2, 3]
        assert conn.autocommit


def test_a_connection_whose_block_raised_is_closed_not_kept(warehouse_url):
    first = _backend(warehouse_url)
    with pytest.raises(psycopg.errors.UndefinedTable), warehouse_connection(warehouse_url) as conn:
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == first
        conn.execute("SELECT * FROM no_such_table")
    assert conn.closed
    assert _backend(warehouse_url) != first


def test_a_connection_left_inside_a_transaction_is_not_kept(warehouse_url):
    with warehouse_connection(warehouse_url) as conn:
        first = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute("BEGIN")
    assert conn.closed
    assert _backend(warehouse_url) != first


def test_a_kept_connection_the_server_ended_is_replaced_without_an_error(warehouse_url):
    first = _backend(warehouse_url)
    with psycopg.connect(warehouse_url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone()[0]
    replacement = _backend(warehouse_url)
    assert replacement != first


def test_no_more_than_kept_connections_stay_open_across_databases(embedded_admin_url):
    urls = [_fresh_database(embedded_admin_url, "kept") for _ in range(KEPT + 2)]
    pids = [_backend(url) for url in urls]
    with psycopg.connect(embedded_admin_url, autocommit=True) as admin:
        open_pids = {
            row[0] for row in admin.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
        }
    # The newest are kept; the older ones were closed as newer ones came.
    assert open_pids == set(pids[-KEPT:])
