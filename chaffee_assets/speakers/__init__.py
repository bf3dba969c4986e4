"""Who speaks when: voice profiles, the host's voice told apart from guests and callers (no Dagster here)."""
