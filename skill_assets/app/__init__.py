"""Layer 9, app: the `skill-slices` command line and the run orchestrator behind it."""
