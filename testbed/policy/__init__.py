"""NetworkPolicy: what a set of policies allows, as the API defines it (semantics, also behind
`testbed policy check`), and its enforcement in each node's nftables (nftables).
"""
