"""Layer 7, present: the HTML report, plots, Markdown tables of findings and lineage of an insight."""
