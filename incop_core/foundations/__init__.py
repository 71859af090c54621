"""Foundations every part uses: user errors, atomic file writes, the plug-in registry, input guards."""
