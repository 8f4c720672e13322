"""The HTML report of an experiment (kdtui report)."""
