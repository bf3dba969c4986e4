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
-- cost of each upsert. `client` is a keyed hash of the client's address (below); rows live a minute.

CREATE UNLOGGED TABLE web_rate_limit (
    client      text PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX web_rate_limit_updated_at_idx ON web_rate_limit (updated_at);

-- Clients are not stored by address: each bucket is keyed by a keyed hash of it (BLAKE2b), with this
-- database's own random key, read once by every server process, so every process finds the same
-- bucket and the table never holds an address.
CREATE TABLE web_rate_limit_key (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key       text NOT NULL
);

INSERT INTO web_rate_limit_key (key)
SELECT md5(random()::text || clock_timestamp()::text) || md5(random()::text || pg_backend_pid()::text);
