"""A cluster's lifecycle, above every package it drives: the Cluster that builds and tears down a
run (cluster), the checks before it (preflight), the supervisor process that owns a running
cluster and answers on its control socket (supervisor, and its client side: control), the
phases of a bring-up (progress), `clean` for what a dead run left, adoption of an orphaned run
(adopt) and `doctor`, which says what this machine offers. Nothing here knows one mode from
another: modes are found through their registry.
"""
