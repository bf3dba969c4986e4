-- Run once by the postgres image on a new volume: Dagster's storage in its own database beside the
-- warehouse; pgvector in the warehouse (its migrations also create it when the role may).
CREATE DATABASE dagster OWNER chaffee;
CREATE EXTENSION IF NOT EXISTS vector;
