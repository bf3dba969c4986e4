"""The code location: every asset, check, resource, schedule and sensor of Ask Dr Chaffee."""

from __future__ import annotations

import dagster as dg

from chaffee_assets.defs import ingest_assets
from chaffee_assets.defs.resources import WarehouseResource, video_source_from_env

defs = dg.Definitions(
    assets=[ingest_assets.videos],
    resources={
        "warehouse": WarehouseResource(),
        "video_source": video_source_from_env(),
    },
)
