"""A cluster's lifecycle: the topology spec and its checks, address plans (ipam), the Cluster that
builds and tears down a run, the run's state file written ahead of every object it makes, the
supervisor process that owns a running cluster and answers on its control socket, `clean` for
what a dead run left, adoption of an orphaned run, and `doctor`, which says what this machine
offers. Nothing here knows one mode from another: modes are found through their registry.
"""
