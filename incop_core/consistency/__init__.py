"""The consistency signal: probe snapshots, IF/GF flows, streaming estimators, thresholds, distances."""
