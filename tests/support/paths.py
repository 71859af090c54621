"""Where the repository lies, for a test at any depth under tests/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # tests/support/paths.py -> the repository root
