"""Studies, each a `python -m bench.studies.<name>` of its own: the control plane (api), BGP
convergence, bring-up figures (foundation_figures), Ingress, NetworkPolicy at scale
(policies), kube-proxy's modes, clusters at scale (scale), Services at scale, `testbed trace`,
and the studies that explain the figures (sessions, variance, consistency)."""
