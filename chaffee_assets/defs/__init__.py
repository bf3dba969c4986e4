"""Dagster wiring: partitions, resources, assets, checks, schedules and sensors. Thin by design.

Two Dagster features this code location uses are marked beta or preview; both were chosen knowingly,
so their warnings are silenced here, before any asset is defined, in every process that loads the
code location (webserver, daemon, code servers, run workers, the `chaffee` command):
- `backfill_policy` (beta): a backfill runs up to 31 days per run instead of one run per day
  (see `partitions.py`);
- `partitions_def` on an `AssetCheckSpec` (preview): each day's check result is recorded on its own
  partition (see `per_day.py`).
Any other beta, preview or deprecation warning still shows.
"""

import warnings

warnings.filterwarnings(
    "ignore", message=r"Parameter `backfill_policy` of function `asset` is currently in beta"
)
warnings.filterwarnings(
    "ignore", message=r"Specifying a partitions_def on an AssetCheckSpec is currently in preview"
)
