"""The benchmark's engine: the harness that runs every mode side by side (harness), paired and
interleaved turns (slicing), the run's controls, the paths and the tests measured on them
(paths, measures), CPU accounting (cpu), statistics and paired comparisons (stats, compare),
the run's files (results) and its progress line (progress)."""
