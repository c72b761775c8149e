"""Layer 5, analysis: skill slices, per-slice accuracy, insights with their statistics, evolution across model versions, skill validation."""
