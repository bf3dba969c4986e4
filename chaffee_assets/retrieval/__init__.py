"""Retrieval: transcripts cut into segments, embedded, stored, searched and evaluated."""
