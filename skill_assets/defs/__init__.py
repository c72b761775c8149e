"""Layer 8, defs: only Dagster code (assets by group, asset checks, partitions, automation, the Definitions object)."""
