-- The search page's per-client rate limit, kept where every server process sees it.
--
-- One row per client: a token bucket of CHAFFEE_RATE_LIMIT_PER_MINUTE tokens refilled evenly
-- (web/protection.py). Each request spends from it in one upsert, which row-locks the client's
-- bucket, so any number of processes on any number of machines share one exact limit per client.
-- A bucket idle for a minute is full again, so rows idle that long are deleted without changing
-- anything.
--
-- UNLOGGED: the rows are rewritten on every request and worth nothing after a crash (every client
-- then starts with a full bucket, as after an idle minute); skipping the write-ahead log halves the
-- cost of each upsert. `client` is the client's address as the server saw it; rows live a minute.

CREATE UNLOGGED TABLE web_rate_limit (
    client      text PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX web_rate_limit_updated_at_idx ON web_rate_limit (updated_at);
