"""`testbed up --adopt NAME`: a new owner for a cluster whose owner died.

The datapath outlived its owner (pinned namespaces, daemons and containers in sessions of
their own); what died with the owner is its memory of the cluster. That is rebuilt here from
the run's records alone — nothing is created or changed in the kernel: the nodes are reached by
their pinned names, the mode's daemons are taken over by PID and start time, and kube-proxy's,
the policy enforcer's and the DNS add-on's memory of what they applied is read back from the
state. From then on the cluster is served as if its owner had built it.
"""
from testbed.addons.dns import kubelet_resolv_conf
from testbed.apiserver.controlplane import ControlPlane
from testbed.errors import TestbedError
from testbed.host import netns
from testbed.host.processes import Process, pid_is
from testbed.kubelet.serviceaccount import TokenIssuer
from testbed.kubeproxy.modes import proxy_mode_names
from testbed.lifecycle import doctor
from testbed.lifecycle.cluster import Cluster
from testbed.lifecycle.preflight import load_spec
from testbed.model.state import RunState, run_dir_for
from testbed.model.topology import PodSpec
from testbed.modes import NodeContext
from testbed.underlay.names import pinned_name


def adopt(name: str, owner: Process, verbose: bool = False) -> Cluster:
    """The Cluster of run `name`, its records now owned by `owner`."""
    run_dir = run_dir_for(name)
    try:
        state = RunState.load(run_dir)
    except (OSError, ValueError):
        raise TestbedError(f"no cluster named {name!r} to adopt (`testbed status` lists them)")
    old = state.supervisor
    if old and pid_is(old.pid, old.start):
        raise TestbedError(f"cluster {name!r} has a live owner (pid {old.pid}): nothing to "
                           "adopt")
    if state.status != "ready":
        raise TestbedError(f"cluster {name!r} is {state.status!r}, not ready: only a "
                           f"built cluster can be adopted (`testbed clean --name {name}`)")
    missing = [n for n in state.nodes if pinned_name(n, name) not in netns.netns_list()]
    if missing:
        raise TestbedError(f"cluster {name!r} has lost the namespaces of {', '.join(missing)}: "
                           f"its datapath is gone (`testbed clean --name {name}`)")
    # kube-proxy's mode as the run recorded it; a CNI mode's replacement comes with the mode
    proxy_mode = state.proxy_mode if state.proxy_mode in proxy_mode_names() else None
    spec = load_spec(state.topology, name, state.underlay, proxy_mode, state.ip_family)
    cluster = Cluster(spec, state.mode, state, verbose, doctor.capabilities())
    mode = cluster.mode
    if mode is None or not mode.adoptable:
        raise TestbedError(f"clusters in {state.mode} mode cannot be adopted yet: `testbed "
                           f"down --name {name}` removes it")
    leases, leases_v6 = mode.plan_leases(spec)
    for node_spec in spec.nodes:
        record = state.nodes[node_spec.name]
        cluster.nodes[node_spec.name] = NodeContext(
            node_spec.name, node_spec.rack, node_spec.ip,
            netns.pod_namespace(pinned_name(node_spec.name, name)),
            state.subdir("nodes", node_spec.name), leases.get(node_spec.name),
            dict(record.facts), ip_v6=node_spec.ip_v6, lease_v6=leases_v6.get(node_spec.name))
    for router in state.routers:
        cluster.routers[router] = netns.pod_namespace(pinned_name(router, name))
    mode.adopt(cluster.context)
    if state.control_plane:
        cluster.control_plane = ControlPlane.recall(name, state.control_plane, state)
        cluster.runtime.token_issuer = TokenIssuer(cluster.control_plane.pki)
    cluster.pods_up = [PodSpec(r.name, r.namespace, r.node, dict(r.labels), dns=dict(r.dns),
                               host_network=r.host_network) for r in state.pods.values()]
    _recall_services(cluster)
    state.update(supervisor=owner, adopted=True)
    return cluster


def _recall_services(cluster):
    """What kube-proxy, the speaker, the policy enforcer and the DNS add-on had applied."""
    state = cluster.state
    cluster.proxies.adopt_agents(cluster.context)
    if state.services:
        cluster.proxies.recall(cluster.context)
        cluster.speaker.announced = cluster.speaker.wanted(cluster)
    if cluster.policy is not None and state.policies:
        cluster.policy.active = True
        cluster.policy.addresses = {n: rec.addresses for n, rec in state.nodes.items()
                                    if rec.addresses}
    if state.ingress:
        cluster.ingress.recall(state)
    if state.dns:
        cluster.dns.pod = state.dns.pod
        cluster.runtime.resolv_conf = kubelet_resolv_conf(cluster)

