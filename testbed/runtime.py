"""The kubelet/CRI role: pod sandboxes, their containers, and CNI ADD/DEL per the CNI spec.

A sandbox is a named network namespace, `<pod>.<namespace>.<cluster>` (read it as a DNS name:
`ip netns exec web.shop.c1 ip addr`), so that the same pod name in two namespaces, or in two
clusters running side by side, never collides; `testbed get pods -o wide` shows it. Plugins
run inside the node's namespace with the CNI_* environment and the network config on stdin, as
a container runtime runs them; their error JSON is shown as they wrote it.
"""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import netns
from .errors import TestbedError
from .state import pid_is, process_start_time

# the testbed's own plugins (built by scripts/install.sh) first, then the distribution's
OWN_PLUGINS = str(Path(__file__).resolve().parent.parent / "build" / "cni")
CNI_PATH = (OWN_PLUGINS, "/usr/lib/cni", "/opt/cni/bin")
POD_IFNAME = "eth0"
NETNS_ETC = "/etc/netns"  # `ip netns exec POD` bind-mounts /etc/netns/POD/* over /etc/*


class CNIError(TestbedError):
    pass


def find_plugin(plugin_type, search=CNI_PATH):
    for directory in search:
        path = os.path.join(directory, plugin_type)
        if os.access(path, os.X_OK):
            return path
    raise CNIError(f"CNI plugin {plugin_type!r} not found in {':'.join(search)} "
                   "(install containernetworking-plugins; `testbed doctor` checks)")


def container_id(cluster, pod):
    return f"{cluster}-{pod.namespace}-{pod.name}"


def sandbox_name(cluster: str, namespace: str, pod: str) -> str:
    """The pod's network namespace: unique per cluster and per Kubernetes namespace ('.' is in
    no cluster or namespace name, so the three parts never run into each other)."""
    return f"{pod}.{namespace}.{cluster}"


def plugin_error_message(stdout, stderr):
    """The message of a CNI error result ({code, msg, details}), or the raw output."""
    try:
        err = json.loads(stdout)
        msg = err.get("msg", "")
        details = err.get("details")
        return f"{msg} ({details})" if details and details != msg else msg
    except (ValueError, AttributeError):
        return (stderr or stdout).strip()


def terminate(pid, start, grace=3.0):
    """SIGTERM a process we started (if it is still that process), then SIGKILL after grace."""
    if not pid_is(pid, start):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pid_is(pid, start):
            time.sleep(0.02)
        if pid_is(pid, start):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def end_processes_in(ns_id, grace=3.0):
    """End whatever still runs in a network namespace that is being removed — a daemon started
    with `testbed exec` would otherwise outlive its pod or node and keep the namespace alive.
    Found by namespace, ended by PID (with its start time checked), never by name."""
    return end_processes_in_all([ns_id], grace)


def end_processes_in_all(ns_ids, grace=3.0):
    """end_processes_in() for many namespaces, with one pass over /proc and one grace period.
    Never the namespace this program or init runs in: a recorded PID that has been reused
    there must not turn into "everything on the machine"."""
    own = {netns.namespace_id("/proc/self/ns/net"), netns.namespace_id("/proc/1/ns/net")}
    wanted = {i for i in ns_ids if i is not None and i not in own}
    if not wanted:
        return []
    found = [(pid, process_start_time(pid))
             for pids in netns.processes_in_any(wanted).values() for pid in pids]
    end_together(found, grace)
    return [pid for pid, _ in found]


def remove_named_namespaces(names):
    """Whatever runs in the named namespaces ended (one pass over /proc), then the names
    deleted with one `ip`; returns the PIDs ended."""
    ended = end_processes_in_all([netns.namespace_id(netns.netns_path(n)) for n in names])
    netns.delete_named(names)
    return ended


def end_together(processes, grace=3.0):
    """SIGTERM every (pid, start) still that process, then SIGKILL those alive after `grace`
    (one grace period for all of them, not one each)."""
    alive = [(pid, start) for pid, start in processes if pid_is(pid, start)]
    _signal_all(alive, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [(pid, start) for pid, start in alive if pid_is(pid, start)]
    _signal_all(alive, signal.SIGKILL)


def _signal_all(processes, signum):
    for pid, _start in processes:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def describe_exit(returncode):
    """How a process we started ended, in words (a Popen returncode; None = running)."""
    if returncode is None:
        return "running"
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class Runtime:
    def __init__(self, state, cni_path=CNI_PATH):
        self.state = state
        self.cni_path = tuple(cni_path)
        self.children = {}  # pid -> Popen of containers this process started (to reap them)
        self.resolv_conf = None  # namespace -> resolv.conf text, once the cluster has DNS

    def invoke(self, command, pod, node, netconf):
        """Run one CNI command for a pod; returns the parsed result (ADD) or {}."""
        plugin = find_plugin(netconf["type"], self.cni_path)
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id(self.state.name, pod),
            "CNI_NETNS": netns.netns_path(self.sandbox(pod)),
            "CNI_IFNAME": POD_IFNAME,
            # what kubelet passes through the CRI runtime; plugins that do not know a key
            # ignore it because of IgnoreUnknown
            "CNI_ARGS": (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};"
                         f"K8S_POD_NAME={pod.name};"
                         f"K8S_POD_INFRA_CONTAINER_ID={container_id(self.state.name, pod)}"),
            "CNI_PATH": ":".join(self.cni_path),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        proc = subprocess.run(node.ns.argv(plugin), input=json.dumps(netconf), env=env,
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise CNIError(f"CNI {netconf['type']} {command} for pod {pod.key} on node "
                           f"{node.name} failed: {plugin_error_message(proc.stdout, proc.stderr)}")
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    def sandbox(self, pod):
        return sandbox_name(self.state.name, pod.namespace, pod.name)

    def create_pod(self, pod, node, netconf):
        sandbox = self.sandbox(pod)
        if sandbox in netns.netns_list():
            raise TestbedError(f"network namespace {sandbox!r} already exists and is not this "
                               f"run's: pod {pod.key} needs it (`testbed clean` removes those of "
                               "runs whose owner died)")
        self.state.own("netns", sandbox)
        netns.run(["ip", "netns", "add", sandbox])
        netns.run(["ip", "-n", sandbox, "link", "set", "lo", "up"])
        record = {"name": pod.name, "node": node.name, "namespace": pod.namespace,
                  "labels": pod.labels, "netns": sandbox, "ip": None, "containers": {},
                  "netconf": netconf, "created": time.time()}
        self.state.data["pods"][pod.key] = record
        self.state.save()
        result = self.invoke("ADD", pod, node, netconf)
        record["ip"] = result["ips"][0]["address"].split("/")[0]
        record["result"] = result
        self.state.save()
        if self.resolv_conf:
            self.write_resolv_conf(record)
        log_dir = self.state.subdir("pods", pod.namespace, pod.name)
        for container in pod.containers:
            record["containers"][container.name] = self.start_container(pod, container, log_dir)
        self.state.save()
        return record

    def write_resolv_conf(self, record):
        """The pod's resolv.conf, as the kubelet writes it; every command started in the pod
        (containers, `testbed exec`) sees it in place of the machine's."""
        directory = os.path.join(NETNS_ETC, record["netns"])
        if directory not in self.state.owned("dirs"):
            if os.path.exists(directory):
                raise TestbedError(f"{directory} exists and is not this run's: pod "
                                   f"{record['namespace']}/{record['name']} needs it for its "
                                   "resolv.conf (`testbed clean` removes those of runs whose "
                                   "owner died)")
            self.state.own("dirs", directory)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "resolv.conf"), "w") as f:
            f.write(self.resolv_conf(record["namespace"]))

    def start_container(self, pod, container, log_dir):
        env = {**os.environ, **dict(container.env)} if container.env else None
        with open(os.path.join(log_dir, f"{container.name}.log"), "ab") as log:
            proc = subprocess.Popen(netns.in_pod(self.sandbox(pod), container.command),
                                    stdin=subprocess.DEVNULL, stdout=log, env=env,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.children[proc.pid] = proc
        entry = self.state.own_pid(proc.pid, f"pod {pod.key} container {container.name}")
        return {**entry, "command": list(container.command)}

    def end_all_containers(self, records):
        """The containers of many pods, ended together (a whole cluster's teardown)."""
        entries = [e for record in records for e in record["containers"].values()]
        end_together([(e["pid"], e["start"]) for e in entries])
        for entry in entries:
            child = self.children.pop(entry["pid"], None)
            if child:
                child.wait()
            self.state.disown_pid(entry["pid"])

    def delete_pod(self, pod, node):
        """Stop containers, CNI DEL, remove the sandbox. Raises the first failure at the end."""
        record = self.state.data["pods"].get(pod.key)
        errors = []
        if record:
            for entry in record["containers"].values():
                terminate(entry["pid"], entry["start"])
                child = self.children.pop(entry["pid"], None)
                if child:
                    child.wait()
                self.state.disown_pid(entry["pid"])
            try:
                self.invoke("DEL", pod, node, record["netconf"])
            except TestbedError as e:
                errors.append(e)
        sandbox = self.sandbox(pod)
        if sandbox in self.state.owned("netns"):
            end_processes_in(netns.namespace_id(netns.netns_path(sandbox)))
            netns.run(["ip", "netns", "del", sandbox], check=False)
            self.state.disown("netns", sandbox)
        directory = os.path.join(NETNS_ETC, sandbox)
        if directory in self.state.owned("dirs"):
            shutil.rmtree(directory, ignore_errors=True)
            self.state.disown("dirs", directory)
        self.state.data["pods"].pop(pod.key, None)
        self.state.save()
        if errors:
            raise errors[0]
