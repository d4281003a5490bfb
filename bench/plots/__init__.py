"""A run shown: its plots (plot), the summary table (report) and the README's results (readme)."""
