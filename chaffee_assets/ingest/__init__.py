"""Finding videos and obtaining their transcripts: sources, caption parsing, failure classes."""
