"""Data sets as in-memory uint8 tensors with a seeded train/validation split, and their file formats."""
