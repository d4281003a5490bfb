"""The kubelet/CRI role: pod sandboxes, their containers, and CNI ADD/DEL per the CNI spec.

A sandbox is a named network namespace, `<pod>.<namespace>.<cluster>` (read it as a DNS name:
`ip netns exec web.shop.c1 ip addr`), so that the same pod name in two namespaces, or in two
clusters running side by side, never collides; `testbed get pods -o wide` shows it. Plugins
run inside the node's namespace with the CNI_* environment and the network config on stdin, as
a container runtime runs them; their error JSON is shown as they wrote it.
"""
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence

from testbed.cni import caller
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.processes import end_processes_in, end_together, process_start_time, terminate
from testbed.kubelet.hosts import managed_hosts, pod_hostname
from testbed.kubelet.serviceaccount import TokenIssuer, mounted
from testbed.model.context import NodeContext
from testbed.model.records import ContainerProcess, PodRecord
from testbed.model.state import RunState
from testbed.model.topology import ContainerSpec, PodSpec

POD_IFNAME = "eth0"
NETNS_ETC = "/etc/netns"  # `ip netns exec POD` bind-mounts /etc/netns/POD/* over /etc/*


def container_id(cluster: str, pod: PodSpec) -> str:
    return f"{cluster}-{pod.namespace}-{pod.name}"


def sandbox_name(cluster: str, namespace: str, pod: str) -> str:
    """The pod's network namespace: unique per cluster and per Kubernetes namespace ('.' is in
    no cluster or namespace name, so the three parts never run into each other)."""
    return f"{pod}.{namespace}.{cluster}"


def pod_ips(result: dict) -> list[str]:
    """The pod's addresses from a CNI ADD result, as the kubelet reads them: IPv4 first, then
    IPv6 (what the runtime reports of a dual-stack sandbox), each once."""
    found: list[str] = []
    for entry in result.get("ips") or []:
        address = str(entry.get("address", "")).split("/")[0]
        if address and address not in found:
            found.append(address)
    return sorted(found, key=lambda a: ":" in a)


class Runtime:
    def __init__(self, state: RunState, cni_path: Sequence[str] = caller.CNI_PATH):
        self.state = state
        self.cni_path = tuple(cni_path)
        # pid -> Popen of containers this process started (to reap them)
        self.children: dict[int, subprocess.Popen] = {}
        # pod record -> resolv.conf text, once the cluster has DNS
        self.resolv_conf: Callable[[PodRecord], str] | None = None
        self.token_issuer: TokenIssuer | None = None  # once it has an API server

    def invoke(self, command: str, pod: PodSpec, node: NodeContext, netconf: dict) -> dict:
        """Run one CNI command for a pod in its node's namespace; returns the parsed result."""
        cid = container_id(self.state.name, pod)
        # what kubelet passes through the CRI runtime; plugins that do not know a key ignore
        # it because of IgnoreUnknown
        cni_args = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
                    f"K8S_POD_INFRA_CONTAINER_ID={cid}")
        return caller.call(command, netconf, container_id=cid,
                           netns_path=netns.netns_path(self.sandbox(pod)), ifname=POD_IFNAME,
                           cni_args=cni_args, cni_path=self.cni_path, wrap=node.ns.argv,
                           what=f" for pod {pod.key} on node {node.name}")

    def sandbox(self, pod: PodSpec) -> str:
        return sandbox_name(self.state.name, pod.namespace, pod.name)

    def create_pod(self, pod: PodSpec, node: NodeContext, netconf: dict) -> PodRecord:
        sandbox = self.sandbox(pod)
        if sandbox in netns.netns_list():
            raise TestbedError(f"network namespace {sandbox!r} already exists and is not this "
                               f"run's: pod {pod.key} needs it (`testbed clean` removes those of "
                               "runs whose owner died)")
        self.state.own("netns", sandbox)
        if pod.host_network:
            # no namespace of its own and no CNI call: the node's network namespace gets the
            # pod's sandbox name too (`ip netns attach`), so that `ip netns exec <sandbox>` —
            # its containers, `testbed exec` — reads the pod's own
            # /etc/netns/<sandbox>/resolv.conf, as the kubelet gives each pod its own
            netns.run(["ip", "netns", "attach", sandbox, str(node.ns.pid)])
        else:
            netns.run(["ip", "netns", "add", sandbox])
            netns.run(["ip", "-n", sandbox, "link", "set", "lo", "up"])
        record = PodRecord(pod.name, pod.namespace, node.name, sandbox, dict(pod.labels),
                           netconf if not pod.host_network else {}, created=time.time(),
                           dns=dict(pod.dns), host_network=pod.host_network)
        self.state.pods[pod.key] = record
        self.state.save()
        if pod.host_network:  # the node's own addresses, as the kubelet reports them
            record.ips = list(self.state.nodes[node.name].addresses_by_family)
        else:
            result = self.invoke("ADD", pod, node, netconf)
            record.ips = pod_ips(result)
            record.result = result
        record.ip = record.ips[0] if record.ips else None
        self.state.save()
        if not pod.host_network:  # a hostNetwork pod sees its node's
            self.write_etc(record, "hosts", managed_hosts(
                record.ips, pod_hostname(pod.name, record.dns), pod.namespace,
                record.dns.get("subdomain", "")))
        if self.resolv_conf:
            self.write_resolv_conf(record)
        log_dir = self.state.subdir("pods", pod.namespace, pod.name)
        if self.token_issuer is not None:
            record.secrets = self.token_issuer.project(log_dir, pod.namespace, pod.name,
                                                       node.name)
        for container in pod.containers:
            record.containers[container.name] = self.start_container(pod, container, log_dir,
                                                                     record.secrets)
        self.state.save()
        return record

    def write_resolv_conf(self, record: PodRecord) -> None:
        """The pod's resolv.conf, as the kubelet writes it."""
        if self.resolv_conf is not None:
            self.write_etc(record, "resolv.conf", self.resolv_conf(record))

    def write_etc(self, record: PodRecord, name: str, text: str) -> None:
        """A file of the pod's own /etc (resolv.conf, hosts): every command started in the
        pod (containers, `testbed exec`) sees it in place of the machine's."""
        directory = os.path.join(NETNS_ETC, record.netns)
        if directory not in self.state.owned.dirs:
            if os.path.exists(directory):
                raise TestbedError(f"{directory} exists and is not this run's: pod "
                                   f"{record.key} needs it for its "
                                   f"{name} (`testbed clean` removes those of runs whose "
                                   "owner died)")
            self.state.own("dirs", directory)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)

    def start_container(self, pod: PodSpec, container: ContainerSpec, log_dir: str,
                        secrets: str = "") -> ContainerProcess:
        env = {**os.environ, **dict(container.env)} if container.env else None
        command = mounted(secrets, container.command) if secrets else container.command
        with open(os.path.join(log_dir, f"{container.name}.log"), "ab") as log:
            proc = subprocess.Popen(netns.in_pod(self.sandbox(pod), command),
                                    stdin=subprocess.DEVNULL, stdout=log, env=env,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.children[proc.pid] = proc
        entry = ContainerProcess(proc.pid, process_start_time(proc.pid),
                                 f"pod {pod.key} container {container.name}",
                                 list(container.command))
        self.state.own("pids", entry)
        return entry

    def end_all_containers(self, records: Iterable[PodRecord]) -> None:
        """The containers of many pods, ended together (a whole cluster's teardown)."""
        entries = [e for record in records for e in record.containers.values()]
        end_together([(e.pid, e.start) for e in entries])
        for entry in entries:
            child = self.children.pop(entry.pid, None)
            if child:
                child.wait()
            self.state.disown_pid(entry.pid)

    def delete_pod(self, pod: PodSpec, node: NodeContext) -> None:
        """Stop containers, CNI DEL, remove the sandbox. Raises the first failure at the end."""
        record = self.state.pods.get(pod.key)
        errors = []
        if record:
            for entry in record.containers.values():
                terminate(entry.pid, entry.start)
                child = self.children.pop(entry.pid, None)
                if child:
                    child.wait()
                self.state.disown_pid(entry.pid)
            try:
                if not record.host_network:
                    self.invoke("DEL", pod, node, record.netconf)
            except TestbedError as e:
                errors.append(e)
        sandbox = self.sandbox(pod)
        if sandbox in self.state.owned.netns:
            if not (record and record.host_network):  # the node's own: only the name goes
                end_processes_in(netns.namespace_id(netns.netns_path(sandbox)))
            netns.run(["ip", "netns", "del", sandbox], check=False)
            self.state.disown("netns", sandbox)
        directory = os.path.join(NETNS_ETC, sandbox)
        if directory in self.state.owned.dirs:
            shutil.rmtree(directory, ignore_errors=True)
            self.state.disown("dirs", directory)
        self.state.pods.pop(pod.key, None)
        self.state.save()
        if errors:
            raise errors[0]
