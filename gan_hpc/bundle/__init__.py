"""Exported generators: the bundle format, loading, sampling, model cards, held-out scoring."""
