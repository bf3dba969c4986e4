-- Hybrid search: pgvector HNSW cosine + PostgreSQL full text, fused by reciprocal rank fusion,
-- with filters applied inside both rankings. Plus views for consumers of search results.

-- A long natural-language question matches nothing as an AND query, so the text side ORs the
-- question's lexemes. The ::tsquery cast keeps each lexeme as to_tsvector stemmed it.
CREATE FUNCTION search_or_tsquery(query text) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT string_agg('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery
    FROM unnest(tsvector_to_array(to_tsvector('english', query))) AS lexeme
$$;

COMMENT ON FUNCTION search_or_tsquery(text) IS
    'The OR of a text''s English lexemes as a tsquery (NULL when it has none): what hybrid search matches text with.';


-- Lexeme statistics for BM25 ranking: in how many segments each lexeme occurs, and corpus totals.
-- Kept exact by statement-level triggers on segments, so every writer (and ON DELETE CASCADE)
-- maintains them; `rebuild_segment_lexeme_stats()` recomputes them from scratch.
CREATE TABLE segment_lexemes (
    lexeme      text PRIMARY KEY,
    segments    bigint NOT NULL
);

CREATE TABLE segment_text_totals (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    segments    bigint NOT NULL DEFAULT 0,
    lexemes     bigint NOT NULL DEFAULT 0   -- sum of length(tsv): distinct lexemes per segment
);
INSERT INTO segment_text_totals DEFAULT VALUES;

CREATE FUNCTION segment_lexeme_stats_apply(changed_segments bigint, changed_lexemes bigint, deltas jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- One writer at a time: two transactions upserting overlapping lexemes in different orders
    -- would otherwise deadlock.
    PERFORM pg_advisory_xact_lock(0x43484147);
    UPDATE segment_text_totals
       SET segments = segments + changed_segments, lexemes = lexemes + changed_lexemes;
    INSERT INTO segment_lexemes AS l (lexeme, segments)
    SELECT key, value::bigint FROM jsonb_each_text(deltas) ORDER BY key
    ON CONFLICT (lexeme) DO UPDATE SET segments = l.segments + EXCLUDED.segments;
    DELETE FROM segment_lexemes WHERE segments <= 0;
END
$$;

CREATE FUNCTION segment_lexeme_stats_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segment_lexeme_stats_apply(
        (SELECT count(*) FROM added), (SELECT coalesce(sum(length(tsv)), 0) FROM added),
        (SELECT coalesce(jsonb_object_agg(lexeme, n), '{}') FROM
            (SELECT lexeme, count(*) AS n FROM added, unnest(tsvector_to_array(tsv)) AS lexeme GROUP BY lexeme) x));
    RETURN NULL;
END
$$;

CREATE FUNCTION segment_lexeme_stats_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segment_lexeme_stats_apply(
        -(SELECT count(*) FROM removed), -(SELECT coalesce(sum(length(tsv)), 0) FROM removed),
        (SELECT coalesce(jsonb_object_agg(lexeme, -n), '{}') FROM
            (SELECT lexeme, count(*) AS n FROM removed, unnest(tsvector_to_array(tsv)) AS lexeme GROUP BY lexeme) x));
    RETURN NULL;
END
$$;

CREATE TRIGGER segments_lexeme_stats_insert AFTER INSERT ON segments
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION segment_lexeme_stats_added();
CREATE TRIGGER segments_lexeme_stats_delete AFTER DELETE ON segments
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION segment_lexeme_stats_removed();
-- An UPDATE is counted as the old rows removed and the new rows added.
CREATE TRIGGER segments_lexeme_stats_update_old AFTER UPDATE ON segments
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION segment_lexeme_stats_removed();
CREATE TRIGGER segments_lexeme_stats_update_new AFTER UPDATE ON segments
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION segment_lexeme_stats_added();

CREATE FUNCTION rebuild_segment_lexeme_stats() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(0x43484147);
    DELETE FROM segment_lexemes;
    INSERT INTO segment_lexemes (lexeme, segments)
    SELECT lexeme, count(*) FROM segments, unnest(tsvector_to_array(tsv)) AS lexeme GROUP BY lexeme;
    UPDATE segment_text_totals
       SET segments = (SELECT count(*) FROM segments),
           lexemes = (SELECT coalesce(sum(length(tsv)), 0) FROM segments);
END
$$;
COMMENT ON FUNCTION rebuild_segment_lexeme_stats() IS
    'Recompute the BM25 statistics (segment_lexemes, segment_text_totals) from the segments table.';

-- search_segments: hybrid search. Its BM25 candidate walk takes the question's informative lexemes
-- rarest first and stops adding lexemes once the postings walked reach a budget (filtered searches
-- are not capped, so they still return k hits when k exist): walking every posting of common lexemes
-- cost about half a second a question at 200 000 segments. An unfiltered walk does not join videos.
-- The HNSW search list (hnsw.ef_search) is twice the ranking depth.
CREATE FUNCTION search_segments(
    query_text          text,
    query_embedding     vector DEFAULT NULL,
    k                   integer DEFAULT 10,
    mode                text DEFAULT 'hybrid',
    model               text DEFAULT 'all-MiniLM-L6-v2',
    published_from      date DEFAULT NULL,
    published_to        date DEFAULT NULL,
    video_ids           text[] DEFAULT NULL,
    max_per_video       integer DEFAULT 5,
    candidates          integer DEFAULT 100,
    rrf_k               integer DEFAULT 30,
    vector_weight       double precision DEFAULT 1.0,
    text_weight         double precision DEFAULT 1.0,
    exact               boolean DEFAULT false,
    collapse_overlaps   boolean DEFAULT true
) RETURNS TABLE (
    segment_id      bigint,
    video_id        text,
    title           text,
    published_at    timestamptz,
    start_s         double precision,
    end_s           double precision,
    text            text,
    link            text,
    score           double precision,
    vector_rank     integer,
    text_rank       integer
)
LANGUAGE plpgsql VOLATILE
-- Scoped to the function: the settings it changes are restored when it returns.
SET hnsw.ef_search = 100
SET hnsw.iterative_scan = 'relaxed_order'
AS $fn$
DECLARE
    dims            integer;
    n_filtered      bigint;
    filtered        boolean := published_from IS NOT NULL OR published_to IS NOT NULL OR video_ids IS NOT NULL;
    depth           integer := greatest(candidates, k);
    vec_sql         text := 'SELECT NULL::bigint AS segment_id, NULL::bigint AS rnk WHERE false';
    txt_sql         text := 'SELECT NULL::bigint AS segment_id, NULL::bigint AS rnk WHERE false';
    -- Postings the BM25 candidate walk may read before it stops adding lexemes (see below):
    -- 10 000 at the default depth. A filtered walk keeps every informative lexeme, or a filter
    -- that excludes the rare ones' segments could leave fewer than k hits where k exist.
    posting_budget  bigint := CASE WHEN filtered THEN NULL ELSE 100 * greatest(candidates, k) END;
BEGIN
    IF mode IS NULL OR mode NOT IN ('hybrid', 'vector', 'text') THEN
        RAISE EXCEPTION 'search mode must be hybrid, vector or text, not %', mode USING ERRCODE = '22023';
    END IF;
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'k must be at least 1' USING ERRCODE = '22023';
    END IF;

    IF mode IN ('hybrid', 'vector') THEN
        IF query_embedding IS NULL THEN
            RAISE EXCEPTION 'mode % needs query_embedding', mode USING ERRCODE = '22023';
        END IF;
        SELECT m.dimensions INTO dims FROM embedding_models m WHERE m.model = search_segments.model;
        IF dims IS NULL THEN
            RAISE EXCEPTION 'embedding model % is not registered', search_segments.model USING ERRCODE = '22023';
        END IF;
        IF vector_dims(query_embedding) <> dims THEN
            RAISE EXCEPTION 'query embedding has % dimensions, model % has %',
                vector_dims(query_embedding), search_segments.model, dims USING ERRCODE = '22023';
        END IF;
        -- Twice the depth: on a library of near-duplicate passages ef_search = depth (100) found
        -- 0.62 of the exact top 10, 200 found 0.71, for about 3 ms more a question.
        PERFORM set_config('hnsw.ef_search', least(greatest(2 * depth, 40), 1000)::text, true);
        IF filtered AND NOT exact THEN
            -- A selective filter leaves HNSW few neighbours to find; scanning the filtered rows
            -- exactly is then both cheaper and complete, so k hits come back whenever k exist.
            SELECT count(*) INTO n_filtered
            FROM segments s JOIN videos v ON v.video_id = s.video_id
            WHERE (published_from IS NULL OR v.partition_date >= published_from)
              AND (published_to IS NULL OR v.partition_date <= published_to)
              AND (video_ids IS NULL OR s.video_id = ANY(video_ids));
            exact := n_filtered <= 20000;
        END IF;
        -- The cast to the model's dimension and the model literal must appear in the query text
        -- for the planner to match the model's partial HNSW index; the exact path orders by the
        -- uncast column, which no index matches.
        vec_sql := format(
            $q$
            SELECT segment_id, row_number() OVER (ORDER BY dist) AS rnk
            FROM (
                SELECT e.segment_id, %1$s AS dist
                FROM segment_embeddings e
                JOIN segments s ON s.segment_id = e.segment_id
                JOIN videos v ON v.video_id = s.video_id
                WHERE e.model = %2$L
                  AND ($2::date IS NULL OR v.partition_date >= $2)
                  AND ($3::date IS NULL OR v.partition_date <= $3)
                  AND ($4::text[] IS NULL OR s.video_id = ANY($4))
                ORDER BY %1$s
                LIMIT $5
            ) nearest
            $q$,
            CASE WHEN exact THEN 'e.embedding <=> $1'
                 ELSE format('e.embedding::vector(%s) <=> $1::vector(%s)', dims, dims) END,
            search_segments.model);
    END IF;

    IF mode IN ('hybrid', 'text') THEN
        -- BM25 (k1 = 1.2, b = 0.75): rare words weigh more than common ones, which ts_rank
        -- cannot do. Two stages: a candidate walk over the GIN index, then full BM25 on the best
        -- 5 x depth candidates (term frequency = the lexeme's position count, length = the
        -- segment's distinct lexemes).
        --
        -- The walk is what costs: every segment holding a walked lexeme is fetched and grouped.
        -- So it walks the question's informative lexemes (in at most a quarter of all segments)
        -- rarest first, and stops adding lexemes once the postings walked reach a budget. The
        -- rarest lexemes carry most of the BM25 weight; a segment holding only the common ones
        -- scores below the candidates the rare ones find. Common lexemes still count in the
        -- second stage, on every candidate.
        txt_sql := format($q$
            WITH qt AS MATERIALIZED (
                SELECT q.lexeme,
                       coalesce(l.segments, 0) AS df,
                       ln(1 + (tot.segments - coalesce(l.segments, 0) + 0.5)::double precision / (coalesce(l.segments, 0) + 0.5)) AS idf,
                       greatest(tot.lexemes::double precision / nullif(tot.segments, 0), 1) AS avglen,
                       tot.segments AS n
                FROM (SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('english', $6))) AS lexeme) q
                CROSS JOIN segment_text_totals tot
                LEFT JOIN segment_lexemes l ON l.lexeme = q.lexeme
            ),
            informative AS (
                SELECT * FROM qt WHERE df <= greatest(n / 4, 1)
                UNION ALL  -- a question of only common words still gets candidates
                SELECT * FROM qt WHERE NOT EXISTS (SELECT 1 FROM qt WHERE df <= greatest(n / 4, 1))
            ),
            walked AS MATERIALIZED (
                SELECT lexeme, idf FROM (
                    SELECT i.lexeme, i.idf,
                           coalesce(sum(i.df) OVER (ORDER BY i.df, i.lexeme
                                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
                    FROM informative i
                    WHERE i.df > 0
                ) w
                WHERE $13::bigint IS NULL OR before < $13  -- the rarest lexeme is always walked
            ),
            candidates AS (
                SELECT p.segment_id
                FROM walked i
                CROSS JOIN LATERAL (
                    SELECT s.segment_id
                    FROM segments s
                    WHERE s.tsv @@ search_or_tsquery(i.lexeme)
                    %s
                ) p
                GROUP BY p.segment_id
                ORDER BY sum(i.idf) DESC, p.segment_id
                LIMIT 5 * $5
            )
            SELECT segment_id, row_number() OVER (ORDER BY r DESC, segment_id) AS rnk
            FROM (
                SELECT s.segment_id,
                       sum(qt.idf * (u.tf * 2.2) / (u.tf + 1.2 * (0.25 + 0.75 * length(s.tsv) / qt.avglen))) AS r
                FROM candidates c
                JOIN segments s ON s.segment_id = c.segment_id
                CROSS JOIN LATERAL (
                    SELECT t.lexeme, coalesce(array_length(t.positions, 1), 1) AS tf FROM unnest(s.tsv) t
                ) u
                JOIN qt ON qt.lexeme = u.lexeme
                GROUP BY s.segment_id
                ORDER BY r DESC, s.segment_id
                LIMIT $5
            ) ranked
        $q$,
            -- Unfiltered, the walk reads no other table.
            CASE WHEN filtered THEN $f$
                      AND EXISTS (SELECT 1 FROM videos v WHERE v.video_id = s.video_id
                                    AND ($2::date IS NULL OR v.partition_date >= $2)
                                    AND ($3::date IS NULL OR v.partition_date <= $3))
                      AND ($4::text[] IS NULL OR s.video_id = ANY($4))$f$
                 ELSE '' END);
    END IF;

    RETURN QUERY EXECUTE format(
        $q$
        WITH vec AS MATERIALIZED (%s),
        txt AS MATERIALIZED (%s),
        fused AS (
            SELECT coalesce(vec.segment_id, txt.segment_id) AS segment_id,
                   coalesce($8 / ($7 + vec.rnk), 0) + coalesce($9 / ($7 + txt.rnk), 0) AS score,
                   vec.rnk AS vector_rank,
                   txt.rnk AS text_rank
            FROM vec FULL JOIN txt ON txt.segment_id = vec.segment_id
        ),
        joined AS (
            SELECT f.*, s.video_id, s.start_s, s.end_s, s.text
            FROM fused f JOIN segments s ON s.segment_id = f.segment_id
        ),
        -- Overlapping segments of one passage would fill the page with the same words: keep the
        -- best-scored one of each overlapping group.
        distinct_passages AS (
            SELECT j.* FROM joined j
            WHERE NOT $12 OR NOT EXISTS (
                SELECT 1 FROM joined o
                WHERE o.video_id = j.video_id
                  AND o.start_s < j.end_s AND o.end_s > j.start_s
                  AND (o.score > j.score OR (o.score = j.score AND o.segment_id < j.segment_id)))
        ),
        placed AS (
            SELECT d.*, row_number() OVER (PARTITION BY d.video_id ORDER BY d.score DESC, d.segment_id) AS in_video
            FROM distinct_passages d
        )
        SELECT p.segment_id, p.video_id, v.title, v.published_at, p.start_s, p.end_s, p.text,
               'https://www.youtube.com/watch?v=' || p.video_id || '&t=' || floor(p.start_s)::bigint || 's',
               p.score::double precision, p.vector_rank::integer, p.text_rank::integer
        FROM placed p
        JOIN videos v ON v.video_id = p.video_id
        WHERE $10::integer IS NULL OR p.in_video <= $10
        ORDER BY p.score DESC, p.segment_id
        LIMIT $11
        $q$, vec_sql, txt_sql)
    USING query_embedding, published_from, published_to, video_ids, depth, query_text,
          rrf_k::double precision, vector_weight, text_weight, max_per_video, k, collapse_overlaps,
          posting_budget;
END
$fn$;

COMMENT ON FUNCTION search_segments(text, vector, integer, text, text, date, date, text[], integer, integer,
                                    integer, double precision, double precision, boolean, boolean) IS
$doc$Hybrid search over transcript segments; returns at most k hits, best first.

Arguments (all but query_text optional, pass by name: search_segments('fasting', emb, k => 5)):
  query_text       the question; its English lexemes are ORed for the full-text ranking.
  query_embedding  the question embedded with `model` (normalised); needed for hybrid and vector.
  k                hits to return (default 10).
  mode             'hybrid' (default: reciprocal rank fusion of both rankings), 'vector', 'text'.
  model            embedding model whose vectors to search (default all-MiniLM-L6-v2).
  published_from, published_to   inclusive UTC publish dates; NULL = unbounded.
  video_ids        restrict to these videos; NULL = all.
  max_per_video    at most this many hits from one video (default 5; NULL = no limit).
  candidates       depth of each ranking before fusion (default 100).
  rrf_k, vector_weight, text_weight   fusion: score = w_v/(rrf_k + rank_v) + w_t/(rrf_k + rank_t).
  exact            true: exact cosine scan instead of the HNSW index (for measuring recall).
  collapse_overlaps  true (default): of hits from one video whose time ranges overlap, keep the best.
Filters are applied inside both rankings, so a filtered search still returns k hits when k exist.
Columns: segment_id, video_id, title, published_at, start_s, end_s, text, link (YouTube deep link at
start_s), score, vector_rank, text_rank (NULL when that ranking did not place the segment).$doc$;

-- Per model: how much of the library its vectors cover (what vector and hybrid search can see).
CREATE VIEW embedding_coverage AS
SELECT m.model,
       m.dimensions,
       (SELECT count(*) FROM segment_embeddings e WHERE e.model = m.model) AS segments_embedded,
       (SELECT count(*) FROM segments) AS segments_total
FROM embedding_models m;

-- A segment with its video, per embedded model: the stable surface for notebooks and apps that
-- rank on their own.
CREATE VIEW embedded_segments AS
SELECT e.model,
       e.embedding,
       ss.*
FROM segment_embeddings e
JOIN searchable_segments ss ON ss.segment_id = e.segment_id;
