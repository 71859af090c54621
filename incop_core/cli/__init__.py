"""The `incop` command line: the dispatcher and its progress display."""
