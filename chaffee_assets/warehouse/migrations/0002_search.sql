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

CREATE FUNCTION search_segments(
    query_text          text,
    query_embedding     vector DEFAULT NULL,
    k                   integer DEFAULT 10,
    mode                text DEFAULT 'hybrid',
    model               text DEFAULT 'all-MiniLM-L6-v2',
    published_from      date DEFAULT NULL,
    published_to        date DEFAULT NULL,
    video_ids           text[] DEFAULT NULL,
    max_per_video       integer DEFAULT 3,
    candidates          integer DEFAULT 100,
    rrf_k               integer DEFAULT 60,
    vector_weight       double precision DEFAULT 1.0,
    text_weight         double precision DEFAULT 1.0,
    exact               boolean DEFAULT false
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
        PERFORM set_config('hnsw.ef_search', least(greatest(depth, 40), 1000)::text, true);
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
        -- ts_rank_cd normalisation 1 divides by 1 + log(length), so long segments do not win
        -- merely by containing more of the ORed words.
        txt_sql := $q$
            SELECT segment_id, row_number() OVER (ORDER BY r DESC, segment_id) AS rnk
            FROM (
                SELECT s.segment_id, ts_rank_cd(s.tsv, q.tsq, 1) AS r
                FROM segments s
                JOIN videos v ON v.video_id = s.video_id
                CROSS JOIN (SELECT search_or_tsquery($6) AS tsq) q
                WHERE s.tsv @@ q.tsq
                  AND ($2::date IS NULL OR v.partition_date >= $2)
                  AND ($3::date IS NULL OR v.partition_date <= $3)
                  AND ($4::text[] IS NULL OR s.video_id = ANY($4))
                ORDER BY r DESC, s.segment_id
                LIMIT $5
            ) ranked
        $q$;
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
        placed AS (
            SELECT f.*, s.video_id, s.start_s, s.end_s, s.text,
                   row_number() OVER (PARTITION BY s.video_id ORDER BY f.score DESC, f.segment_id) AS in_video
            FROM fused f JOIN segments s ON s.segment_id = f.segment_id
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
          rrf_k::double precision, vector_weight, text_weight, max_per_video, k;
END
$fn$;

COMMENT ON FUNCTION search_segments(text, vector, integer, text, text, date, date, text[], integer, integer,
                                    integer, double precision, double precision, boolean) IS
$doc$Hybrid search over transcript segments; returns at most k hits, best first.

Arguments (all but query_text optional, pass by name: search_segments('fasting', emb, k => 5)):
  query_text       the question; its English lexemes are ORed for the full-text ranking.
  query_embedding  the question embedded with `model` (normalised); needed for hybrid and vector.
  k                hits to return (default 10).
  mode             'hybrid' (default: reciprocal rank fusion of both rankings), 'vector', 'text'.
  model            embedding model whose vectors to search (default all-MiniLM-L6-v2).
  published_from, published_to   inclusive UTC publish dates; NULL = unbounded.
  video_ids        restrict to these videos; NULL = all.
  max_per_video    at most this many hits from one video (default 3; NULL = no limit).
  candidates       depth of each ranking before fusion (default 100).
  rrf_k, vector_weight, text_weight   fusion: score = w_v/(rrf_k + rank_v) + w_t/(rrf_k + rank_t).
  exact            true: exact cosine scan instead of the HNSW index (for measuring recall).
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
