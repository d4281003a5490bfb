"""flannel's three backends, sharing one base as flannel's pkg/backend does: vxlan (flannel.1, a
VXLAN device with a neighbour and FDB entry per peer), host-gw (a route per peer via its node)
and udp (flannel0, a TUN device served by a userspace forwarder). Every node runs the bridge
and host-local CNI plugins, as flannel's CNI plugin delegates to them.
"""
REGISTERING = ("hostgw", "udp", "vxlan")  # the modules that register its modes (base._discover)
