-- Each stored vector's sign bits, read beside its key, so a filtered search need not read every
-- vector the filter allows.
--
-- A filter of up to 20 000 segments is ranked exactly (docs/retrieval.md). Reading and scoring all
-- of its vectors was most of a one-year filter's vector ranking at 200 000 segments: 18 290 rows of
-- 1.5 kB, 12 700 buffer visits, about 19 ms of the search. Now the filter's segments are ordered
-- by the Hamming distance of their sign bits (pgvector's `binary_quantize`, 48 bytes for 384
-- dimensions) to the question's, read from the index below alone, and only the nearest 5 x the
-- candidate depth are read whole and ranked by their exact cosine (search_segments.sql).
--
-- The column is generated, so every writer (COPY, upserts) keeps it without knowing of it. Adding
-- it rewrites the table and rebuilds its indexes, HNSW included, once: 61 and 109 s for 200 037
-- segments in two runs on two cores, during which searches wait.

ALTER TABLE segment_embeddings
    ADD COLUMN embedding_bits varbit GENERATED ALWAYS AS (binary_quantize(embedding)::varbit) STORED;

CREATE INDEX segment_embeddings_bits_idx ON segment_embeddings (segment_id, model) INCLUDE (embedding_bits);
