"""Answers written by a chat model from the top search hits, with checked citations, a budget and a cache."""
