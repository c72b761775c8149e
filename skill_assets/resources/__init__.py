"""Layer 2, resources: every I/O with the outside world (LLM APIs, the embedder, LanceDB, call and vector caches, the Dagster project resource and IO manager)."""
