"""What to prune: masks, magnitudes, coupled channel groups, kept widths, schedules, and the next decision's distance."""
