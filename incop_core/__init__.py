"""incop core: Information Consistent Pruning as a plain library (no Prefect here)."""

__version__ = "0.1.0"
