"""A MetalLB-style speaker for LoadBalancer Services (layer-2 mode)."""
from testbed.kubeproxy.proxies import underlay_device


class Speaker:
    """MetalLB's layer-2 mode: one node of the first rack answers ARP for every LoadBalancer
    address (it holds them as /32s on its underlay interface); kube-proxy's rules on that
    node take the traffic from there."""

    def __init__(self):
        self.announced = set()

    def sync(self, cluster):
        wanted = {r.load_balancer_ip for r in cluster.state.services.values()
                  if r.load_balancer_ip}
        if wanted == self.announced:
            return
        node = self.announcer(cluster)
        dev = underlay_device(node)
        for ip in sorted(wanted - self.announced):
            node.ns.run("ip", "addr", "add", f"{ip}/32", "dev", dev)
        for ip in sorted(self.announced - wanted):
            node.ns.run("ip", "addr", "del", f"{ip}/32", "dev", dev, check=False)
        self.announced = wanted

    @staticmethod
    def announcer(cluster):
        first_rack = cluster.spec.racks[0].name
        return next((n for n in cluster.nodes.values() if n.rack == first_rack),
                    next(iter(cluster.nodes.values())))
