"""Services as kube-proxy makes them: the Service table, ClusterIP allocation, endpoints and the
shared ServicePort type (services, types), kube-proxy's modes — one module each holding its
renderer, its applier and how it describes a Service — and their registry (modes), the base
every Service applier shares (applier), kube-proxy's own listeners per node (agent, proxier)
and a MetalLB-style speaker that answers ARP for LoadBalancer addresses (speaker).
"""
