"""What the audience asks: the question log's daily summary and its retention."""
