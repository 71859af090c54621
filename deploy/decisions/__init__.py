"""What a pipeline run decides (Prefect-free): the variant to publish and its summary, and the release gate."""
