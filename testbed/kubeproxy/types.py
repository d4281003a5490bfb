"""What every kube-proxy mode shares: the ServicePort it renders rules from (one port of one
Service with its endpoints, as kube-proxy's ServicePortName and endpoints cache give it), and
the constants the modes agree on."""
from dataclasses import dataclass

MASQ_MARK = "0x4000"
AFFINITY_TIMEOUT_S = 10800


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with what kube-proxy needs of it."""
    namespace: str
    name: str
    port_name: str
    protocol: str        # "tcp" or "udp"
    cluster_ip: str
    port: int
    node_port: int       # 0: none
    affinity: bool       # sessionAffinity: ClientIP
    endpoints: tuple     # ("10.244.1.5", 8080), ...
    external_ips: tuple = ()  # a LoadBalancer's ingress addresses

    @property
    def id(self):
        """kube-proxy's ServicePortName: namespace/name, then :port-name if it has one."""
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")
