"""The benchmark harness: scenarios, tool adapters, sessions and their controls, statistics,
plots, and the studies that explain the figures (variance, sessions, consistency)."""
