"""Procedural training data for the embedded model (the tiny world)."""
