"""What flows/ needs beyond export and bench, kept Prefect-free: the variant to publish and its summary, stage exchange."""
