"""Prefect-free help for flows/: the variant to publish and its summary, the release gate, stage exchange."""
