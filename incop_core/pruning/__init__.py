"""What to prune: masks, magnitudes, coupled channel groups, kept widths, schedules, next-decision distance."""
