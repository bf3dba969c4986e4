-- search_segments: the warehouse's search, the one function the product and SQL consumers call.
-- Vector ranking (HNSW, or a small filter's own vectors), BM25 over the segment postings, and
-- their fusion, filtered by publish date and video inside the query; docs/retrieval.md says how
-- each part was chosen and measured.
--
-- A definition, not a migration (chaffee_assets/warehouse/migrate.py): this file is the function's
-- current text, applied after the numbered migrations whenever it changes. Its earlier versions are
-- the numbered migrations that defined it (0002, 0003, 0006-0009). A change of its arguments must
-- drop the old signature here first, since CREATE OR REPLACE cannot change them.

-- Before `spoken_by` and the speaker columns (migration 0013's labels) the function took 20 arguments.
DROP FUNCTION IF EXISTS search_segments(text, vector, integer, text, text, date, date, text[], integer, integer,
                                        integer, double precision, double precision, boolean, boolean,
                                        double precision, text, double precision, double precision,
                                        double precision);

CREATE OR REPLACE FUNCTION search_segments(
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
    collapse_overlaps   boolean DEFAULT true,
    min_similarity      double precision DEFAULT NULL,
    fusion              text DEFAULT 'convex',
    alpha               double precision DEFAULT 0.55,
    bm25_k1             double precision DEFAULT 0.9,
    bm25_b              double precision DEFAULT 0.4,
    spoken_by           text DEFAULT NULL
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
    text_rank       integer,
    similarity      double precision,
    text_score      double precision,
    weak            boolean,
    host_share      real,
    speaker         text
)
LANGUAGE plpgsql VOLATILE
-- Scoped to the function: the settings it changes are restored when it returns.
SET hnsw.ef_search = 100
SET hnsw.iterative_scan = 'relaxed_order'
AS $fn$
DECLARE
    dims            integer;
    floor_sim       double precision := min_similarity;
    -- The filter's segments when few enough to rank directly (NULL otherwise).
    allowed_segments bigint[];
    filtered        boolean := published_from IS NOT NULL OR published_to IS NOT NULL OR video_ids IS NOT NULL;
    -- The videos a filter allows, resolved once: both rankings then test `video_id = ANY(...)`,
    -- which the BM25 walk answers inside the postings' index (the video is in its key) and the
    -- vector ranking by the videos' segments, instead of looking each candidate's video up.
    allowed         text[];
    depth           integer := greatest(candidates, k);
    vec_sql         text := 'SELECT NULL::bigint AS segment_id, NULL::text AS video_id, NULL::bigint AS rnk, NULL::double precision AS dist WHERE false';
    txt_sql         text := 'SELECT NULL::bigint AS segment_id, NULL::bigint AS rnk, NULL::double precision AS bm25 WHERE false';
    -- The vector ranking's rows carry their cosine distance: convex fusion needs the score.
    
    -- Postings the BM25 candidate walk may read before it stops adding lexemes (see below), per
    -- candidate of the depth: text mode's walk is its only source of candidates, so it reads three
    -- times what a hybrid one does. A filtered search's budget is set once the filter's size is known.
    postings_per_candidate integer := CASE WHEN mode = 'text' THEN 300 ELSE 100 END;
    posting_budget  bigint := CASE WHEN filtered THEN NULL ELSE postings_per_candidate * greatest(candidates, k) END;
    -- Whether the exact BM25 takes the walked lexemes' part from the walk (see below), and its
    -- query: the candidates' BM25 by segment.
    reuse_walk      boolean;
    bm25_sql        text;
BEGIN
    IF mode IS NULL OR mode NOT IN ('hybrid', 'vector', 'text') THEN
        RAISE EXCEPTION 'search mode must be hybrid, vector or text, not %', mode USING ERRCODE = '22023';
    END IF;
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'k must be at least 1' USING ERRCODE = '22023';
    END IF;
    IF fusion IS NULL OR fusion NOT IN ('convex', 'rrf') THEN
        RAISE EXCEPTION 'fusion must be convex or rrf, not %', fusion USING ERRCODE = '22023';
    END IF;
    IF alpha IS NULL OR alpha < 0 OR alpha > 1 THEN
        RAISE EXCEPTION 'alpha must be between 0 and 1' USING ERRCODE = '22023';
    END IF;
    IF bm25_k1 IS NULL OR bm25_k1 < 0 OR bm25_b IS NULL OR bm25_b < 0 OR bm25_b > 1 THEN
        RAISE EXCEPTION 'bm25_k1 must be at least 0 and bm25_b between 0 and 1' USING ERRCODE = '22023';
    END IF;
    IF spoken_by IS NOT NULL AND spoken_by <> 'host' THEN
        RAISE EXCEPTION 'spoken_by must be host or NULL, not %', spoken_by USING ERRCODE = '22023';
    END IF;

    IF query_embedding IS NOT NULL OR mode IN ('hybrid', 'vector') THEN
        IF query_embedding IS NULL THEN
            RAISE EXCEPTION 'mode % needs query_embedding', mode USING ERRCODE = '22023';
        END IF;
        SELECT m.dimensions, coalesce(floor_sim, m.min_similarity) INTO dims, floor_sim
        FROM embedding_models m WHERE m.model = search_segments.model;
        IF dims IS NULL THEN
            RAISE EXCEPTION 'embedding model % is not registered', search_segments.model USING ERRCODE = '22023';
        END IF;
        IF vector_dims(query_embedding) <> dims THEN
            RAISE EXCEPTION 'query embedding has % dimensions, model % has %',
                vector_dims(query_embedding), search_segments.model, dims USING ERRCODE = '22023';
        END IF;
    END IF;

    IF filtered THEN
        SELECT coalesce(array_agg(v.video_id), '{}') INTO allowed
        FROM videos v
        WHERE (published_from IS NULL OR v.partition_date >= published_from)
          AND (published_to IS NULL OR v.partition_date <= published_to)
          AND (video_ids IS NULL OR v.video_id = ANY(video_ids));
    END IF;

    IF mode IN ('hybrid', 'vector') THEN
        -- Twice the depth: on a library of near-duplicate passages ef_search = depth (100) found
        -- 0.62 of the exact top 10, 200 found 0.71, for about 3 ms more a question.
        PERFORM set_config('hnsw.ef_search', least(greatest(2 * depth, 40), 1000)::text, true);
        IF filtered THEN
            -- A selective filter leaves HNSW few neighbours to find; ranking the filtered rows
            -- directly is then both cheaper and complete, so k hits come back whenever k exist.
            -- One past the limit is enough to know the filter is too wide for that, so a wide
            -- filter stops reading early.
            allowed_segments := ARRAY(
                SELECT s.segment_id FROM segments s WHERE s.video_id = ANY(allowed)
                LIMIT CASE WHEN exact THEN NULL ELSE 20001 END);
            IF NOT exact AND cardinality(allowed_segments) > 20000 THEN
                allowed_segments := NULL;
            END IF;
        END IF;
        IF allowed_segments IS NOT NULL THEN
            -- The filter's segments, ranked by cosine. Their ids are one array, which the B-tree
            -- sorts and then walks in order: one scan of the key steps from each id to the next
            -- instead of descending the index once per segment. The ids are passed through a
            -- sub-select so that the planner sees one value, not 20 000 to estimate one by one.
            -- Unless `exact` is asked for, the segments are first ordered by the Hamming distance
            -- of their sign bits to the question's, read from the key's index alone (48 bytes a
            -- segment, not 1.5 kB), and only the nearest 5 x depth are read whole and ranked by
            -- cosine: a filter of at most that many is ranked exactly, a wider one gives up a
            -- few of its 100 nearest (migration 0010, docs/retrieval.md). Only the nearest
            -- `depth` are looked up for their video.
            vec_sql := format(
                $q$
                SELECT nearest.segment_id, s.video_id, row_number() OVER (ORDER BY nearest.dist) AS rnk, nearest.dist
                FROM (
                    SELECT e.segment_id, e.embedding <=> $1 AS dist
                    FROM segment_embeddings e
                    WHERE e.model = %1$L AND e.segment_id = ANY(%2$s)
                    ORDER BY dist
                    LIMIT $5
                ) nearest
                JOIN segments s ON s.segment_id = nearest.segment_id
                $q$,
                search_segments.model,
                CASE WHEN exact THEN '(SELECT $20)::bigint[]'
                     ELSE format(
                         $ids$ARRAY(
                            SELECT b.segment_id FROM segment_embeddings b
                            WHERE b.model = %L AND b.segment_id = ANY((SELECT $20)::bigint[])
                            ORDER BY b.embedding_bits <~> binary_quantize($1), b.segment_id
                            LIMIT 5 * $5)$ids$,
                         search_segments.model) END);
        ELSE
            -- The cast to the model's dimension and the model literal must appear in the query
            -- text for the planner to match the model's partial HNSW index; the exact path orders
            -- by the uncast column, which no index matches. A date filter reaches this path as
            -- its dates, not as its videos: planning `video_id = ANY(<2 600 videos>)` took 7-11 ms,
            -- and the array hidden in a sub-select made the planner leave HNSW for an exact scan.
            vec_sql := format(
                $q$
                SELECT segment_id, video_id, row_number() OVER (ORDER BY dist) AS rnk, dist
                FROM (
                    SELECT e.segment_id, s.video_id, %1$s AS dist
                    FROM segment_embeddings e
                    JOIN segments s ON s.segment_id = e.segment_id
                    WHERE e.model = %2$L
                      %3$s
                    ORDER BY %1$s
                    LIMIT $5
                ) nearest
                $q$,
                CASE WHEN exact THEN 'e.embedding <=> $1'
                     ELSE format('e.embedding::vector(%s) <=> $1::vector(%s)', dims, dims) END,
                search_segments.model,
                CASE
                    WHEN NOT filtered THEN ''
                    WHEN video_ids IS NOT NULL THEN 'AND s.video_id = ANY($4)'
                    ELSE 'AND EXISTS (SELECT 1 FROM videos v WHERE v.video_id = s.video_id'
                         || CASE WHEN published_from IS NOT NULL THEN ' AND v.partition_date >= $2' ELSE '' END
                         || CASE WHEN published_to IS NOT NULL THEN ' AND v.partition_date <= $3' ELSE '' END
                         || ')'
                END);
        END IF;
    END IF;

    IF filtered AND mode IN ('hybrid', 'text') AND cardinality(allowed) > 0 THEN
        -- The budget is counted in postings of the whole library (the lexemes' document
        -- frequencies), so it is scaled up by the inverse of the filter's share: the walk then reads
        -- about as many postings inside the filter as an unfiltered search reads in a library of the
        -- filter's size. In hybrid mode the vector ranking brings k candidates from inside the
        -- filter whatever the walk finds; in text mode a walk that finds too few is redone without
        -- the budget (below). The share is the filter's segments when the exact path counted them,
        -- else its videos'.
        posting_budget := CASE
            WHEN allowed_segments IS NOT NULL THEN
                postings_per_candidate * depth * (SELECT t.segments FROM segment_text_totals t)
                    / greatest(cardinality(allowed_segments), 1)
            ELSE
                postings_per_candidate * depth * (SELECT count(*) FROM videos) / cardinality(allowed)
        END;
    END IF;

    IF mode IN ('hybrid', 'text') THEN
        -- BM25 (length = the segment's words): rare words weigh more than common ones, which
        -- ts_rank cannot do. k1 0.9 and b 0.4 are the passage-retrieval defaults of Anserini
        -- (Lucene), taken as published, not tuned here: segments are near-equal windows, so
        -- length matters less than in whole documents (docs/retrieval.md). Two stages: candidates, then exact BM25 over
        -- every query lexeme for each candidate (term frequency = the lexeme's position count).
        -- Every candidate is returned with its rank: the ranking is its best `depth`, and convex
        -- fusion reads the BM25 of the vector ranking's candidates from the rest.
        --
        -- Candidates are the segments holding the question's informative lexemes (in at most a
        -- quarter of all segments), walked rarest first until the postings walked reach a budget,
        -- best 5 x depth by summed IDF; in hybrid mode, plus the vector ranking's candidates.
        -- Postings come from `segment_postings` by index-only scans (the GIN index would make every
        -- posting a heap fetch of its segment). The rarest lexemes carry most of the BM25 weight,
        -- and a segment holding only common ones scores below the candidates the rare ones find.
        --
        -- The exact BM25 reads, for each question lexeme, the postings of the candidates' videos
        -- and segments: one index-only scan per lexeme, skipping through its postings; a posting
        -- carries all BM25 needs (tf, words). The walk has already read every posting of the
        -- lexemes it walked (inside the filter), so where its budget covered most of the
        -- question (a filter of at most a quarter of the library: a one-year filter at 200 000
        -- segments walks 12 of 15 lexemes) their BM25 is summed during the walk and the scans
        -- read only the lexemes left out, the same scores 2.5-3.6 ms sooner. Unfiltered the walk
        -- covers two or three lexemes, and keeping its 15 000 segments' sums cost more than the
        -- scans it saved (docs/retrieval.md).
        reuse_walk := posting_budget IS NULL OR posting_budget >= 4 * postings_per_candidate * depth;
        bm25_sql := format($q$
                SELECT p.segment_id,
                       sum(qt.idf * (p.tf * ($18 + 1)) / (p.tf + $18 * (1 - $19 + $19 * p.words / qt.avglen))) AS r
                FROM qt
                JOIN segment_postings p ON p.lexeme = qt.lexeme
                     AND p.video_id = ANY(ARRAY(SELECT DISTINCT video_id FROM pool))
                     AND p.segment_id = ANY(ARRAY(SELECT segment_id FROM pool))
                %s
                GROUP BY p.segment_id
            $q$,
            CASE WHEN reuse_walk THEN 'WHERE qt.lexeme NOT IN (SELECT lexeme FROM walked)' ELSE '' END);
        IF reuse_walk THEN
            bm25_sql := format($q$
                SELECT pool.segment_id, coalesce(w.bm25, 0) + coalesce(rest.r, 0) AS r
                FROM pool
                LEFT JOIN walked_segments w ON w.segment_id = pool.segment_id
                LEFT JOIN (%s) rest ON rest.segment_id = pool.segment_id
                WHERE w.segment_id IS NOT NULL OR rest.segment_id IS NOT NULL
            $q$, bm25_sql);
        END IF;
        txt_sql := format($q$
            WITH qt AS MATERIALIZED (
                SELECT q.lexeme,
                       coalesce(l.segments, 0) AS df,
                       ln(1 + (tot.segments - coalesce(l.segments, 0) + 0.5)::double precision / (coalesce(l.segments, 0) + 0.5)) AS idf,
                       greatest(tot.words::double precision / nullif(tot.segments, 0), 1) AS avglen,
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
                SELECT lexeme, idf, avglen FROM (
                    SELECT i.lexeme, i.idf, i.avglen,
                           coalesce(sum(i.df) OVER (ORDER BY i.df, i.lexeme
                                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
                    FROM informative i
                    WHERE i.df > 0
                ) w
                WHERE $13::bigint IS NULL OR before < $13  -- the rarest lexeme is always walked
            ),
            -- Every segment holding a walked lexeme, with its summed IDF (the walk's order) and its
            -- BM25 over the walked lexemes (read by the exact BM25 only where `reuse_walk`).
            walked_segments AS (
                SELECT p.segment_id, min(p.video_id) AS video_id, sum(i.idf) AS idf_sum,
                       sum(i.idf * (p.tf * ($18 + 1)) / (p.tf + $18 * (1 - $19 + $19 * p.words / i.avglen))) AS bm25
                FROM walked i
                JOIN segment_postings p ON p.lexeme = i.lexeme
                %1$s
                GROUP BY p.segment_id
            ),
            walk AS (
                SELECT segment_id, video_id FROM walked_segments
                ORDER BY idf_sum DESC, segment_id
                LIMIT 5 * $5
            ),
            -- Text mode has no other candidates, so where the budget left lexemes out and the walk
            -- found fewer than 5 x depth segments (a filter that holds few of the rare lexemes'
            -- segments), every informative lexeme is walked: k hits come back whenever k exist.
            -- The conditions hold no column, so the planner tests them once, before any posting.
            rewalk AS (
                SELECT p.segment_id, min(p.video_id) AS video_id
                FROM informative i
                JOIN segment_postings p ON p.lexeme = i.lexeme
                %1$s
                WHERE $16 = 'text' AND i.df > 0
                  AND (SELECT count(*) FROM walk) < 5 * $5
                  AND (SELECT count(*) FROM walked) < (SELECT count(*) FROM informative WHERE df > 0)
                GROUP BY p.segment_id
                ORDER BY sum(i.idf) DESC, p.segment_id
                LIMIT 5 * $5
            ),
            pool AS MATERIALIZED (  -- vec is empty unless the mode is hybrid
                SELECT segment_id, video_id FROM walk WHERE NOT EXISTS (SELECT 1 FROM rewalk)
                UNION
                SELECT segment_id, video_id FROM rewalk
                UNION
                SELECT segment_id, video_id FROM vec
            )
            SELECT segment_id, row_number() OVER (ORDER BY r DESC, segment_id) AS rnk, r AS bm25
            FROM (%2$s) ranked
        $q$,
            -- Unfiltered, the walk reads nothing but the postings' index. Filtered, the videos
            -- reach it through a sub-select for the same reason as the vector ranking's ids.
            CASE WHEN filtered THEN 'AND p.video_id = ANY((SELECT $4)::text[])' ELSE '' END,
            bm25_sql);
    END IF;

    RETURN QUERY EXECUTE format(
        $q$
        WITH vec AS MATERIALIZED (%s),
        txt AS MATERIALIZED (%s),
        candidate AS (
            SELECT segment_id FROM vec
            UNION
            SELECT segment_id FROM txt WHERE rnk <= $5
        ),
        -- Both scores for every candidate of either ranking: the question's cosine (exact, from
        -- the stored vector) and its BM25 (0 when the segment holds none of its words).
        scored AS (
            SELECT c.segment_id, vec.rnk AS vector_rank, txt.rnk AS text_rank, txt.bm25,
                   CASE WHEN vec.segment_id IS NOT NULL THEN 1 - vec.dist
                        WHEN $1 IS NOT NULL THEN
                            (SELECT 1 - (e.embedding <=> $1) FROM segment_embeddings e
                             WHERE e.segment_id = c.segment_id AND e.model = %L)
                   END AS similarity
            FROM candidate c
            LEFT JOIN vec ON vec.segment_id = c.segment_id
            LEFT JOIN txt ON txt.segment_id = c.segment_id
        ),
        fused AS (
            SELECT sc.*,
                   CASE
                       WHEN $16 = 'vector' THEN sc.similarity
                       WHEN $16 = 'text' THEN sc.bm25
                       WHEN $17 = 'rrf' THEN
                           coalesce($8 / ($7 + sc.vector_rank), 0)
                           + coalesce($9 / ($7 + CASE WHEN sc.text_rank <= $5 THEN sc.text_rank END), 0)
                       -- Convex: alpha x cosine min-max normalised over the candidates, plus
                       -- (1 - alpha) x BM25 over the best BM25 (a lone candidate counts as best).
                       ELSE $15 * coalesce((sc.similarity - min(sc.similarity) OVER ())
                                           / nullif(max(sc.similarity) OVER () - min(sc.similarity) OVER (), 0), 1)
                            + (1 - $15) * coalesce(sc.bm25 / nullif(max(sc.bm25) OVER (), 0), 0)
                   END AS score
            FROM scored sc
        ),
        -- Who speaks (segment_speakers; NULL where unknown). 'host' keeps the candidates the host
        -- speaks at least half of, before overlapping ones are collapsed, so a neighbour he speaks
        -- can stand in for a guest's passage; unknown speakers are left out.
        joined AS (
            SELECT f.*, s.video_id, s.start_s, s.end_s, s.text, ss.host_share, ss.speaker
            FROM fused f
            JOIN segments s ON s.segment_id = f.segment_id
            LEFT JOIN segment_speakers ss ON ss.segment_id = f.segment_id
            WHERE $21::text IS NULL OR ss.host_share >= 0.5
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
        ),
        page AS (
            SELECT p.* FROM placed p
            WHERE $10::integer IS NULL OR p.in_video <= $10
            ORDER BY p.score DESC, p.segment_id
            LIMIT $11
        )
        SELECT p.segment_id, p.video_id, v.title, v.published_at, p.start_s, p.end_s, p.text,
               'https://www.youtube.com/watch?v=' || p.video_id || '&t=' || floor(p.start_s)::bigint || 's',
               p.score::double precision, p.vector_rank::integer,
               CASE WHEN p.text_rank <= $5 THEN p.text_rank::integer END,
               p.similarity, p.bm25, p.similarity < $14, p.host_share, p.speaker
        FROM page p
        JOIN videos v ON v.video_id = p.video_id
        ORDER BY p.score DESC, p.segment_id
        $q$, vec_sql, txt_sql, search_segments.model)
    USING query_embedding, published_from, published_to, allowed, depth, query_text,
          rrf_k::double precision, vector_weight, text_weight, max_per_video, k, collapse_overlaps,
          posting_budget, floor_sim, alpha, mode, fusion, bm25_k1, bm25_b, allowed_segments, spoken_by;
END
$fn$;

-- What SQL consumers read with \df+ or obj_description(); restated here so it follows the function.
COMMENT ON FUNCTION search_segments(text, vector, integer, text, text, date, date, text[], integer, integer,
                                    integer, double precision, double precision, boolean, boolean,
                                    double precision, text, double precision, double precision,
                                    double precision, text) IS
$doc$Hybrid search over transcript segments; returns at most k hits, best first.

Arguments (all but query_text optional, pass by name: search_segments('fasting', emb, k => 5)):
  query_text       the question; its English lexemes are ORed for the full-text ranking.
  query_embedding  the question embedded with `model` (normalised, with the model's query prompt);
                   needed for hybrid and vector; in text mode it only fills `similarity`/`weak`.
  k                hits to return (default 10).
  mode             'hybrid' (default: both rankings fused), 'vector', 'text'.
  model            embedding model whose vectors to search (default all-MiniLM-L6-v2).
  published_from, published_to   inclusive UTC publish dates; NULL = unbounded.
  video_ids        restrict to these videos; NULL = all.
  max_per_video    at most this many hits from one video (default 5; NULL = no limit).
  candidates       depth of each ranking before fusion (default 100).
  fusion           'convex' (default): score = alpha x cosine (min-max over the candidates of both
                   rankings) + (1 - alpha) x BM25 / best BM25; 'rrf': reciprocal rank fusion.
  alpha            the cosine's weight in convex fusion (default 0.55).
  bm25_k1, bm25_b  BM25's term-frequency saturation and length normalisation (default 0.9, 0.4).
  rrf_k, vector_weight, text_weight   rrf: score = w_v/(rrf_k + rank_v) + w_t/(rrf_k + rank_t).
  exact            true: the cosine of every vector (under a filter, every one it allows) instead
                   of the HNSW index or a filter's sign-bit shortlist (for measuring recall).
  collapse_overlaps  true (default): of hits from one video whose time ranges overlap, keep the best.
  min_similarity   cosine below which a hit is `weak`; default the model's (embedding_models).
  spoken_by        'host': only moments the enrolled host speaks at least half of (from the
                   fused candidates of both rankings; moments whose speakers are unknown are left
                   out); NULL (default): everyone.
Filters are applied inside both rankings, so a filtered search still returns k hits when k exist.
Columns: segment_id, video_id, title, published_at, start_s, end_s, text, link (YouTube deep link at
start_s), score, vector_rank, text_rank (NULL when that ranking did not place the segment),
similarity (cosine to the question; NULL without query_embedding), text_score (BM25; NULL when the
segment holds none of the question's words), weak (similarity below the floor: the library holds
nothing closely related; NULL when not judged), host_share (the host's share of the moment's
speech) and speaker (who speaks most of it: an enrolled name or 'other'), both NULL where unknown.$doc$;
