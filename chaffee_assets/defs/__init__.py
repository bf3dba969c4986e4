"""Dagster wiring: partitions, resources, assets, checks, schedules and sensors. Thin by design."""
