"""skill-slices: skill-level insights and skill-based routing for foundation models.

The package is layered; a layer imports only from the layers before it in this list
(checked by import-linter in `make test`, see CONTRIBUTING.md):

    core -> resources -> ingest -> annotate -> analysis -> routing -> present -> defs -> app
"""
