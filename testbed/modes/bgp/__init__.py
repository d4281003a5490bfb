"""The Calico-style mode: routed pods without a bridge (cali… veths with proxy ARP), address
blocks per node handed out by an IPAM plugin, and BIRD 2 daemons announcing each node's blocks
over BGP, in full mesh or through route reflectors.
"""
REGISTERING = ("mode",)  # the modules that register its modes (base._discover)
