"""A cluster's lifecycle: underlay, mode datapath, pods — built in that order, torn down in reverse.

Whatever fails (an exception, Ctrl-C, SIGTERM) in the middle of a build, everything made so far
is torn down before the error propagates.
"""
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from testbed import manifests
from testbed.addons.dns import ClusterDNS
from testbed.api import apply
from testbed.apiserver.controlplane import ControlPlane
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.daemons import DaemonRecord
from testbed.host.parallel import for_each
from testbed.host.processes import (
    Process,
    end_processes_in_all,
    process_start_time,
    remove_named_namespaces,
)
from testbed.host.signals import signals_deferred
from testbed.host.waiting import wait_until
from testbed.ingress.controller import IngressController
from testbed.kubelet.runtime import Runtime, sandbox_name
from testbed.kubelet.serviceaccount import TokenIssuer, release_mount_path
from testbed.kubeproxy import services
from testbed.kubeproxy.modes import get_proxy_mode
from testbed.kubeproxy.speaker import Speaker
from testbed.lifecycle import doctor
from testbed.lifecycle.clean import describe, keep_only, still_present
from testbed.lifecycle.preflight import (
    BARE,
    check_mode,
    check_name_free,
    check_proxy_mode,
    check_underlay,
)
from testbed.lifecycle.progress import BuildProgress
from testbed.manifests.families import IPV6, SERVICE_CIDRS
from testbed.model.records import HostRecord, NodeRecord, PodRecord, PolicyEnforcement
from testbed.model.state import RunState
from testbed.model.topology import EXTERNAL_NAME, ClusterSpec, PodSpec
from testbed.modes import ClusterContext, NodeContext, get_mode
from testbed.policy import nftables as policy_nft
from testbed.underlay.fabric import OvsFabric
from testbed.underlay.names import pinned_name, shell_namespaces
from testbed.underlay.racks import Underlay

DAD_TIMEOUT_S = 10.0  # IPv6 duplicate address detection takes about 1 s per address


def _plain(value):
    """Whether a value is plain JSON (as a mode's facts are, openflow's peers aside)."""
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


class Cluster:
    def __init__(self, spec: ClusterSpec, mode_name: str, state: RunState, verbose: bool = False,
                 caps: dict[str, bool] | None = None):
        self.spec = spec
        self.mode = get_mode(mode_name) if mode_name != BARE else None
        self.state = state
        self.verbose = verbose
        self.caps = caps or {}
        self.underlay = None
        self.fabric = None   # OvsFabric with `underlay: ovs`
        self.manifests = []  # kinds.Manifests of the topology, applied after its pods
        self.speaker = Speaker()  # LoadBalancer addresses on the underlay
        self.dns = ClusterDNS()  # the kube-dns add-on, started with the first manifest
        self.ingress = IngressController()  # started with the first Ingress
        self.policy = None  # policy_nft.Enforcer where NetworkPolicy is enforced
        if self.mode is not None and (spec.policy_enforce if spec.policy_enforce is not None
                                      else self.mode.policy_by_default):
            self.policy = policy_nft.Enforcer(self.mode.policy_hook)
        self.nodes = {}      # name -> NodeContext
        self.routers = {}    # name -> netns.Namespace of the rack router(s)
        self.hosts = {}      # name -> netns.Namespace of a host outside the cluster
        self.runtime = Runtime(state)
        self.control_plane = None  # ControlPlane: etcd and the API server, when wanted
        self.wants_control_plane = False
        self.pods_up = []    # PodSpecs attached, in order
        self.timings = {}
        self.build_progress = BuildProgress(self.timings)  # up() gives it a reporter
        # what the mode sees of this cluster (modes/base.py); it shares the dicts above
        self.context = ClusterContext(spec, state, self.nodes, self.routers, self.caps,
                                      self.timings, self.hosts)
        # kube-proxy in the topology's mode, or what the CNI mode runs instead
        self.proxies = self.mode.service_proxy(self.context) \
            if self.mode is not None and self.mode.kube_proxy_replacement \
            else get_proxy_mode(spec.proxy_mode)()

    @classmethod
    def create(cls, spec: ClusterSpec, mode_name: str, verbose: bool = False,
               control_plane: bool = False, **facts: Any) -> "Cluster":
        """Check everything that can be checked, then make the run directory and state.

        mode_name BARE builds the underlay only (the benchmark's node-to-node baseline);
        control_plane: an API server on an etcd of the cluster's own (`testbed up` asks for
        it; the benchmark and most tests do without)."""
        delayed = any(rack.delay for rack in spec.racks)
        probe = mode_name != BARE or delayed or spec.underlay != "linux"
        caps = doctor.capabilities() if probe else {}
        check_underlay(spec, caps)
        # kube-proxy's mode by name ("": its default), or what a mode that replaces kube-proxy
        # runs instead
        proxy_mode = get_proxy_mode(spec.proxy_mode).name
        if mode_name != BARE:
            check_mode(mode_name, spec, caps)
            replacement = get_mode(mode_name).kube_proxy_replacement
            if replacement is not None:
                proxy_mode = replacement.name
            else:
                check_proxy_mode(spec, caps)
        if delayed and not caps.get("netem"):
            raise TestbedError(f"{spec.path}: delay needs the kernel's netem qdisc, which this "
                               "kernel lacks (see `testbed doctor`); delay cannot be emulated here")
        loaded = [manifests.load(p) for p in spec.manifests] if mode_name != BARE else []
        check_name_free(spec.name)
        pods = spec.pods if mode_name != BARE else []
        names = {sandbox_name(spec.name, p.namespace, p.name) for p in pods}
        names |= {pinned_name(n, spec.name) for n in spec.namespace_holders}
        clashing = sorted(names & set(netns.netns_list()))
        if clashing:
            raise TestbedError(f"network namespaces {', '.join(clashing)} already exist; this "
                               "cluster needs those names (`testbed clean` removes those of "
                               "runs whose owner died)")
        # the owner: whoever tears it down (a supervisor, an interactive `up`, a benchmark);
        # `testbed clean` leaves a run alone while its owner lives
        facts.setdefault("supervisor", Process(os.getpid(), process_start_time(os.getpid()),
                                               "owner"))
        facts.update(underlay=spec.underlay, proxy_mode=proxy_mode, ip_family=spec.ip_family)
        try:
            state = RunState.create(spec.name, mode=mode_name, topology=spec.path, **facts)
        except FileExistsError:  # made by another `up` since the check
            check_name_free(spec.name)
            raise
        state.own("dirs", state.dir)
        cluster = cls(spec, mode_name, state, verbose, caps)
        cluster.manifests = loaded
        cluster.wants_control_plane = control_plane
        return cluster

    # --- bring-up ------------------------------------------------------------------------
    def up(self, progress: Callable[[str], None] | None = None) -> "Cluster":
        """Build the cluster; progress(text) hears of each phase and of nodes and pods done."""
        started = time.monotonic()
        self.build_progress = BuildProgress(self.timings, progress)
        try:
            # one snapshot at the end: ownership is journaled as it happens (state.py)
            with self.state.deferred_saves():
                self._build()
        except BaseException:
            self.down()
            raise
        self.timings["up_s"] = time.monotonic() - started
        self.state.update(status="ready", timings=self.timings)
        return self

    def _build(self):
        spec, mode, phases = self.spec, self.mode, self.build_progress
        leases, leases_v6 = mode.plan_leases(spec) if mode else ({}, {})
        with phases.phase("underlay"):
            self.underlay = Underlay(spec, on_process=self.state.own_pid,
                                     on_namespace=lambda name: self.state.own("netns", name),
                                     verbose=self.verbose)
            self.underlay.build()
        with phases.phase("nodes", len(self.underlay.net.hosts)):
            self.underlay.configure_hosts(on_done=phases.step)
            if spec.underlay == "ovs":
                self.fabric = OvsFabric(spec, self.underlay, self.state, self.caps)
                self.fabric.start()
            self._record_hosts(leases, leases_v6)
        if self.wants_control_plane:
            with phases.phase("control_plane"):
                self._start_control_plane()
        if mode is None:
            self.state.update(pod_mtu=None)
            return
        nodes = list(self.nodes.values())
        with phases.phase("mode_setup", len(nodes)):
            mode.prepare(self.context)
            for_each(nodes, lambda node: (mode.setup_node(spec, node), phases.step()))
        with phases.phase("peers", len(nodes)):
            for_each(nodes, lambda node: (
                mode.add_peers(spec, node, [peer for peer in nodes if peer is not node]),
                phases.step()))
        with phases.phase("daemons"):
            mode.start(self.context)  # a mode that waits for its routing adds "convergence_s"
        self.timings["daemons_s"] -= self.timings.get("convergence_s", 0.0)
        for node in nodes:
            record = self.state.nodes[node.name]
            record.details = mode.describe_node(node)
            record.lease = record.details.pop("lease", record.lease)
            if _plain(node.facts):  # read back by a new owner (adopt.py)
                record.facts = node.facts
        self.state.update(pod_mtu=mode.pod_mtu(spec), network_policy=self.policy_status())
        with phases.phase("pods", len(spec.pods)):
            self._add_pods(spec.pods, on_done=phases.step)
            if spec.has_ipv6:
                self._wait_for_dad(nodes)
            if self.control_plane is not None:
                # as on kind: cluster DNS from the start (where NSD is installed), and
                # default/kubernetes to the API server on every node
                if shutil.which("nsd"):
                    self.dns.start(self)
                self.sync_network()
        warnings = []
        with phases.phase("manifests", len(self.manifests)):
            for loaded in self.manifests:
                warnings += apply.apply(self, loaded).warnings
                phases.step()
        self.state.update(warnings=warnings)

    @staticmethod
    def _wait_for_dad(nodes):
        """Until no node holds a tentative IPv6 address (cni0's gateway, a tunnel's): the
        kernel checks each new one for duplicates for about a second, and a pod's first packet
        through a tentative gateway would wait for it. Ready means usable."""
        def settled():
            return all(not node.ns.ip_json("-6", "addr", "show", "tentative") for node in nodes)
        if not wait_until(settled, DAD_TIMEOUT_S, 0.1):
            raise TestbedError(f"IPv6 addresses of the nodes still tentative after "
                               f"{DAD_TIMEOUT_S:.0f} s (duplicate address detection)")

    def _start_control_plane(self):
        """etcd and the API server, listening for kubectl on the host's loopback and, as
        kube-apiserver on kind's control-plane node, on the first node's address: the
        endpoint of default/kubernetes, which pods and nodes reach."""
        first = self.spec.nodes[0]
        # its address of the primary family, as kube-apiserver's --advertise-address
        host = first.ip_v6 if self.spec.families[0] == IPV6 else first.ip
        inside = {"netns": netns.netns_path(pinned_name(first.name, self.spec.name)),
                  "host": str(host.ip), "port": services.API_SERVER_PORT}
        ranges = ",".join(str(SERVICE_CIDRS[family]) for family in self.spec.families)
        self.control_plane = ControlPlane(self.spec.name, self.state.subdir("control-plane"),
                                          service_ranges=ranges)
        self.control_plane.start(self.state, inside)
        self.state.update(control_plane=self.control_plane.record())
        self.runtime.token_issuer = TokenIssuer(self.control_plane.pki)
        services.add_api_server(self.state, [(inside["host"], first.name)])

    def _record_hosts(self, leases, leases_v6):
        """The nodes' contexts and the records of nodes, router and external host."""
        spec = self.spec
        for node_spec in spec.nodes:
            host = self.underlay.host(node_spec.name)
            node = NodeContext(node_spec.name, node_spec.rack, node_spec.ip,
                               netns.node_namespace(node_spec.name, host.pid),
                               self.state.subdir("nodes", node_spec.name),
                               leases.get(node_spec.name), ip_v6=node_spec.ip_v6,
                               lease_v6=leases_v6.get(node_spec.name))
            self.nodes[node.name] = node
            zone = next((r.zone for r in spec.racks if r.name == node.rack), "")
            self.state.nodes[node.name] = NodeRecord(
                host.pid, str(node.ip.ip), node.rack,
                ",".join(map(str, node.leases)) or "-", zone=zone,
                ip_v6=str(node.ip_v6.ip) if node.ip_v6 else "",
                ipv6_only=spec.families == (IPV6,))
        if spec.has_router:
            router = self.underlay.host("router")
            self.routers["router"] = netns.node_namespace("router", router.pid)
            # its address on the first rack (the external client's), as traces and drops name it
            self.state.routers = {"router": HostRecord(router.pid, str(spec.racks[0].router_ip.ip))}
        if spec.external_client:
            client = self.underlay.host(EXTERNAL_NAME)
            self.hosts[EXTERNAL_NAME] = netns.node_namespace(EXTERNAL_NAME, client.pid)
            self.state.hosts = {EXTERNAL_NAME: HostRecord(client.pid, str(spec.external_ip.ip))}
        self.state.save()

    def _add_pods(self, pods, on_done=lambda: None):
        """Attach pods: each node's in order, different nodes' side by side (as kubelets on
        different nodes do). Records stay in the topology's order."""
        by_node = {}
        for pod in pods:
            by_node.setdefault(pod.node, []).append(pod)

        def attach(node_pods):
            for pod in node_pods:
                self.add_pod(pod)
                on_done()
        try:
            for_each(by_node.values(), attach)
        finally:
            order = {pod.key: i for i, pod in enumerate(pods)}
            self.pods_up.sort(key=lambda pod: order.get(pod.key, -1))
            self.state.pods = dict(sorted(self.state.pods.items(),
                                          key=lambda item: order.get(item[0], -1)))

    # --- pods ------------------------------------------------------------------------------
    def add_pod(self, pod: PodSpec) -> PodRecord:
        """Attach a pod (a PodSpec) to its node, as the kubelet would; returns its record."""
        node = self.nodes[pod.node]
        self.pods_up.append(pod)
        record = self.runtime.create_pod(pod, node, self.mode.network_config(self.spec, node))
        if not pod.host_network:  # a hostNetwork pod is the node's business, not the CNI's
            self.mode.pod_added(self.context, pod, node, record)
        self.state.event("Normal", "Scheduled", f"pod/{pod.key}",
                         f"Successfully assigned {pod.key} to {pod.node}")
        self.state.event("Normal", "Started", f"pod/{pod.key}",
                         f"Started {', '.join(record.containers)}; sandbox {record.netns}, IP "
                         f"{record.ip or '<none>'}")
        return record

    def policy_status(self) -> PolicyEnforcement:
        """Whether NetworkPolicy is enforced here, in words for `get netpol`."""
        if self.policy is not None:
            return PolicyEnforcement(True, f"per-pod chains in table {policy_nft.TABLE} of each "
                                     "node")
        return PolicyEnforcement(False, self.mode.policy_note)

    def sync_network(self) -> None:
        """After pods, Services or policies changed: every node's kube-proxy rules and
        policy rules, the LoadBalancer addresses, the DNS zone."""
        self.proxies.sync(self.context)
        if self.policy is not None:
            self.policy.sync(self.context)
        self.speaker.sync(self.context)
        self.dns.sync(self)
        self.ingress.sync(self)

    def least_busy_node(self) -> str:
        """Where the scheduler puts a pod without nodeName: the node with the fewest pods."""
        load = {name: 0 for name in self.nodes}
        for rec in self.state.pods.values():
            load[rec.node] += 1
        return min(self.nodes, key=lambda n: load[n])  # ties: the topology's order

    def relabel_pod(self, key: str, labels: dict[str, str]) -> None:
        """New labels for a running pod, by "<namespace>/<name>" (as `kubectl apply` or
        `label` changes them)."""
        self.state.pods[key].labels = labels
        self.pods_up = [dataclasses.replace(p, labels=labels) if p.key == key else p
                        for p in self.pods_up]
        self.state.save()

    def remove_pod(self, key: str) -> None:
        """Detach a pod ("<namespace>/<name>") and remove its sandbox."""
        pod = next(p for p in self.pods_up if p.key == key)
        node = self.nodes[pod.node]
        self.state.event("Normal", "Killing", f"pod/{key}", "Stopping the pod's containers "
                         "and removing its sandbox")
        try:
            if not pod.host_network:
                self.mode.pod_removed(self.context, pod, node)
        finally:
            self.pods_up.remove(pod)
            self.runtime.delete_pod(pod, node)

    # --- the mode's daemons ----------------------------------------------------------------
    def check_daemons(self) -> dict[str, DaemonRecord]:
        """Status of the mode's and the fabric's daemons; a dead one is recorded in the state
        for `status`."""
        status = self.fabric.daemon_status() if self.fabric else {}
        status.update(self.control_plane.status() if self.control_plane else {})
        status.update(self.mode.daemon_status(self.context) if self.mode else {})
        status.update(self.proxies.daemon_status())
        if status != self.state.daemons:
            for label, now in status.items():
                before = self.state.daemons.get(label)
                if not now.alive and (before is None or before.alive):
                    self.state.event("Warning", "DaemonDied", f"daemon/{label}",
                                     f"{label} on {now.node} {now.state}")
                elif now.alive and before is not None and not before.alive:
                    self.state.event("Normal", "Restarted", f"daemon/{label}",
                                     f"{label} on {now.node} runs again (pid {now.pid})")
            self.state.update(daemons=status)
        return status

    def restart_daemon(self, node_name: str) -> dict[str, DaemonRecord]:
        if node_name not in self.nodes:
            raise TestbedError(f"no node {node_name!r} in cluster {self.spec.name}")
        agent_restarted = self.proxies.restart_agent(self.context, node_name)
        if not agent_restarted or self.mode.daemon_status(self.context):
            self.mode.restart_daemon(self.context, node_name)
        return self.check_daemons()

    # --- teardown ------------------------------------------------------------------------
    def down(self, progress: Callable[[str], None] | None = None) -> list[str]:
        """Tear down everything this cluster made; returns what could not be removed.

        Once begun, teardown finishes: SIGINT, SIGTERM and SIGHUP meanwhile are ignored, and
        every step's failure (whatever it raises) is recorded while the rest goes on. The state
        file is brought in line with what still exists, so that its records are
        dropped only for what is gone and `testbed clean` can finish what is left.

        As when a real node is deleted, pods get no CNI DEL: their containers are ended
        together and deleting the namespaces removes their devices (their addresses were
        leased in the run directory, which goes too). progress(text) hears of each phase.
        """
        started = time.monotonic()
        self.teardown_errors = []
        if not os.path.isdir(self.state.dir):  # torn down already, records and all
            return []
        report = progress or (lambda _text: None)

        def attempt(step, *args):
            try:
                step(*args)
            except BaseException as e:  # a signal handler of a library, a bug: go on
                self.teardown_errors.append(f"{getattr(step, '__qualname__', step)}: "
                                            f"{type(e).__name__}: {e}")

        with signals_deferred():
            self.state.update(status="tearing down")
            held = netns.outside_holders(self.state.owned.netns)
            self.teardown_errors += [netns.describe_holders(n, pids) for n, pids in held.items()]
            with self.state.deferred_saves():
                records = list(self.state.pods.values())
                report(f"ending the containers of {len(records)} pods")
                attempt(self.runtime.end_all_containers, records)
                self.pods_up = []
                attempt(self.proxies.stop, self.state)
                if self.mode is not None:
                    report("stopping the mode's daemons")
                    attempt(self.mode.stop, self.context)
                if self.fabric is not None:
                    attempt(self.fabric.stop)
                    self.fabric = None
                if self.control_plane is not None:
                    report("stopping the API server and etcd")
                    attempt(self.control_plane.stop, self.state)
                    self.control_plane = None
                if self.underlay is not None:
                    report("removing nodes and racks")
                    attempt(self._stop_underlay)
                report("removing namespaces")
                attempt(self._remove_named_namespaces, held)
                left = still_present(self.state, self.state.dir)
                keep_only(self.state, left)
                attempt(release_mount_path, self.state.dir)
        self.timings["down_s"] = time.monotonic() - started
        return self.teardown_errors + [describe(item) for item in left
                                       if not (item[0] == "netns" and item[1] in held)]

    def _stop_underlay(self):
        left = shell_namespaces(self.state.owned.pids)
        try:
            self.underlay.stop()
        finally:
            end_processes_in_all(left)  # what else ran in the nodes, routers and racks
            self.underlay = None

    def _remove_named_namespaces(self, held):
        """Pods' sandboxes and the pinned namespaces of nodes and racks, with whatever still
        runs in them; those held open by strangers stay (reported at the start)."""
        remove_named_namespaces([n for n in self.state.owned.netns if n not in held])
        for path in list(self.state.owned.dirs):  # pods' /etc/netns/<sandbox>, for resolv.conf
            if path != self.state.dir:
                shutil.rmtree(path, ignore_errors=True)

    def remove_run_dir(self) -> None:
        """The run directory goes only when nothing it records is left."""
        if not still_present(self.state, self.state.dir):
            shutil.rmtree(self.state.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.up()
        except BaseException:
            self.remove_run_dir()
            raise

    def __exit__(self, exc_type, *exc):
        left = self.down()
        self.remove_run_dir()
        if left and exc_type is None:
            raise TestbedError(f"cluster {self.spec.name}: could not remove {'; '.join(left)} "
                               f"(`testbed clean --name {self.spec.name}` retries)")
