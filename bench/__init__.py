"""The benchmark harness: scenarios, tool adapters and plots."""
