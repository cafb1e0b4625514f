"""Metrics and scoring of both stages, shared by training (validation, the final test) and `sugar evaluate`."""
