"""Experiments over runs: the fair comparison, the discrimination ladder, plots."""
