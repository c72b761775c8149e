"""Layer 3, ingest: benchmark instances and model results in, one module per harness format behind the `Reader` protocol, and live evaluation of models."""
