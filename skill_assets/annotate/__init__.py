"""Layer 4, annotate: skills of each instance (LLM rationales, the taxonomy annotator, imported labels) and the dispatch between them."""
