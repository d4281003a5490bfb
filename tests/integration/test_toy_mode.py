"""Adding a mode touches no file outside its folder: a toy mode written into a temporary
directory (one module, its options, its own doctor probe) is found through TESTBED_MODES_PATH,
and a cluster comes up with it and carries real packets between pods on two nodes."""
import subprocess
import sys
import textwrap

import pytest

from testbed.host import netns
from testbed.modes import base, get_mode, mode_names, option_readers

from .conftest import pod, transfer

TOY = '''
"""A toy mode: the standard bridge plugin on each node and a route per peer (host-gw's shape)."""
from dataclasses import dataclass

from testbed.host.probes import Probe
from testbed.model import ipam
from testbed.modes.base import UNDERLAY_DEV, Mode, register


@dataclass(frozen=True)
class ToyOptions:
    bridge: str = "toy0"


def read_toy(section):
    section.fields({"bridge"})
    bridge = section.doc.get("bridge", "toy0")
    if not isinstance(bridge, str) or not 1 <= len(bridge) <= 15:
        section.fail("bridge", bridge, "must be an interface name")
    return ToyOptions(bridge)


@register
class ToyMode(Mode):
    name = "toy"
    summary = "a bridge per node, a route per peer"
    probes = (Probe("sh", "binary", "the toy mode"),)
    requires = ("veth", "bridge", "cni/bridge", "cni/host-local", "sh")
    options = {"toy": read_toy}

    def plan(self, spec):
        return ipam.node_leases(spec)

    def add_peer(self, spec, node, peer):
        node.ns.run("ip", "route", "replace", str(peer.lease), "via", str(peer.ip.ip),
                    "dev", UNDERLAY_DEV)

    def network_config(self, spec, node):
        return {"cniVersion": "1.0.0", "name": "toy", "type": "bridge",
                "bridge": self.option(spec, "toy").bridge, "isDefaultGateway": True,
                "mtu": self.pod_mtu(spec),
                "ipam": {"type": "host-local", "dataDir": f"{node.dir}/cni/networks",
                         "ranges": [[{"subnet": str(node.lease)}]]}}
'''

TOPOLOGY = """
name: toy
mode: toy
toy: {bridge: toybr0}
nodes:
  - {name: node1, pods: 1}
  - {name: node2, pods: 1}
"""


@pytest.fixture
def toy_folder(tmp_path, monkeypatch):
    """TESTBED_MODES_PATH naming a folder that holds the toy mode; the registry, the modes'
    search path and the imported module are as before once the test ends."""
    folder = tmp_path / "modes"
    (folder / "toy").mkdir(parents=True)
    (folder / "toy" / "__init__.py").write_text(textwrap.dedent(TOY))
    monkeypatch.setenv(base.MODES_PATH, str(folder))
    package = sys.modules["testbed.modes"]
    before = list(package.__path__)
    yield folder
    base._REGISTRY.pop("toy", None)
    package.__path__[:] = before
    sys.modules.pop("testbed.modes.toy", None)


def test_a_mode_from_a_folder_outside_the_tree_brings_a_cluster_up(toy_folder, tmp_path,
                                                                   make_cluster):
    assert "toy" in mode_names() and "toy" in option_readers()
    assert get_mode("toy").requires[-1] == "sh"
    topology = tmp_path / "toy.yaml"
    topology.write_text(TOPOLOGY)
    cluster = make_cluster(topology, "toy")
    node1, node2 = (cluster.nodes[name] for name in ("node1", "node2"))
    bridge = node1.ns.run("ip", "-o", "link", "show", "toybr0")
    assert "toybr0" in bridge  # the topology's `toy:` key, read by the mode's own reader
    routes = node1.ns.run("ip", "route", "show", str(node2.lease))
    assert f"via {node2.ip.ip}" in routes
    a, b = pod(cluster, "node1-pod1"), pod(cluster, "node2-pod1")
    assert subprocess.run(netns.in_pod(a.netns, ["ping", "-c1", "-W2", b.ip]),
                          capture_output=True).returncode == 0
    assert transfer(cluster, 1 << 20)


def test_a_bad_value_under_the_toy_key_names_file_field_and_value(toy_folder, tmp_path):
    from testbed.errors import SpecError
    from testbed.lifecycle.preflight import load_spec

    topology = tmp_path / "bad.yaml"
    topology.write_text(TOPOLOGY.replace("toybr0", "a-name-far-too-long"))
    with pytest.raises(SpecError) as info:
        load_spec(str(topology))
    assert (info.value.field, info.value.value) == ("toy.bridge", "a-name-far-too-long")
