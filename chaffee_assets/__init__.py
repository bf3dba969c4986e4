"""Ask Dr Chaffee: a Dagster code location that turns a YouTube channel into searchable, timestamped text."""
