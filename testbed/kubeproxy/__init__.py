"""Services as kube-proxy makes them: the Service table, ClusterIP allocation, endpoints and the
shared ServicePort type (services, types), one renderer per proxy mode (iptables, nftables,
ipvs), the appliers that keep every node's rules in step (proxies), and a MetalLB-style
speaker that answers ARP for LoadBalancer addresses (speaker).
"""
