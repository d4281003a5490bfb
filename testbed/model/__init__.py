"""The model every package reads: the topology's types (topology) and the checked spec that
yields them (spec), the address plans (ipam), the records of what a run made (records), the
run's state file written ahead of every object it makes (state) and its logs by name (logs).
Nothing here builds or drives anything; it imports only the host mechanics and the manifests'
types.
"""
