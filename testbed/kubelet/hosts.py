"""A pod's /etc/hosts as the kubelet writes it (managedHostsFileContent in
pkg/kubelet/kubelet_pods.go): the header, localhost of both families and IPv6's well-known
names, then a line per address of the pod (every entry of status.podIPs, so a dual-stack pod
has two), naming its hostname — with a subdomain, its fully qualified name first:
<hostname>.<subdomain>.<namespace>.svc.<cluster domain>. A hostNetwork pod gets none: it
sees its node's."""

HEADER = "# Kubernetes-managed hosts file.\n"
LOCAL = ("127.0.0.1\tlocalhost\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\n"
         "fe00::0\tip6-localnet\n"
         "fe00::0\tip6-mcastprefix\n"
         "fe00::1\tip6-allnodes\n"
         "fe00::2\tip6-allrouters\n")
HOSTNAME_MAX = 63  # the kubelet truncates a pod's name to make its hostname


def pod_hostname(name: str, dns: dict) -> str:
    """spec.hostname, else the pod's name (cut to 63 characters, its end trimmed of '-' and
    '.', as the kubelet's truncatePodHostnameIfNeeded)."""
    return dns.get("hostname") or name[:HOSTNAME_MAX].rstrip("-.")


def managed_hosts(ips: list[str], hostname: str, namespace: str, subdomain: str = "",
                  cluster_domain: str = "cluster.local") -> str:
    lines = []
    for ip in ips:
        if subdomain:
            lines.append(f"{ip}\t{hostname}.{subdomain}.{namespace}.svc.{cluster_domain}\t"
                         f"{hostname}\n")
        else:
            lines.append(f"{ip}\t{hostname}\n")
    return HEADER + LOCAL + "".join(lines)
