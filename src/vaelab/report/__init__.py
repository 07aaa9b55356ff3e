"""The report: its sections (blocks built from the study's outputs) and their rendering to Markdown and HTML."""
