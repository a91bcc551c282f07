"""Experiments: models arrive with their issue (see DESIGN.md)."""
