"""Layer 6, routing: the skill-based routing policy, the `Router` protocol with one class per baseline, their evaluation and cost."""
