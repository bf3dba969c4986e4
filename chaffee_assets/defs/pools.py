"""Concurrency pools the assets declare, and the limit the Dagster instance keeps on each."""

# Steps that may run local Whisper declare this pool: one such step at a time holds the GPU.
GPU_POOL = "gpu"
GPU_POOL_LIMIT = 1

POOL_LIMITS = {GPU_POOL: GPU_POOL_LIMIT}
