"""The bgp mode's IPAM plugin (testbed-calico-blocks), run as a CNI runtime runs it, without
root: it only keeps files."""
import io
import json

import pytest

from testbed.cni import skeleton
from testbed.modes.bgp import ipam_plugin


def conf(data_dir, blocks=("10.1.0.0/30",)):
    return {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "testbed-calico",
            "ipam": {"type": "testbed-calico-blocks", "blocks": list(blocks),
                     "dataDir": str(data_dir)}}


def call(command, config, container="c1"):
    out = io.StringIO()
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_IFNAME": "eth0",
           "CNI_NETNS": "/run/netns/x"}
    code = ipam_plugin.main(io.StringIO(json.dumps(config)), out, env)
    return code, json.loads(out.getvalue()) if out.getvalue() else None


def test_add_hands_out_every_address_of_the_blocks_as_32s_and_del_frees_them(tmp_path):
    config = conf(tmp_path)
    got = [call("ADD", config, f"c{i}")[1]["ips"] for i in range(4)]
    assert got == [[{"address": f"10.1.0.{i}/32"}] for i in range(4)]
    assert call("ADD", config, "c2")[1]["ips"] == [{"address": "10.1.0.2/32"}]  # kept
    code, err = call("ADD", config, "c9")
    assert (code, err["code"]) == (1, skeleton.TRY_AGAIN) and "no free address" in err["msg"]
    assert call("DEL", config, "c1") == (0, None)
    assert call("DEL", config, "c1") == (0, None)  # again: nothing to free is no error
    assert call("ADD", config, "c9")[1]["ips"] == [{"address": "10.1.0.1/32"}]
    assert (tmp_path / "10.1.0.1").read_text() == "c9"  # as host-local keeps them


def test_check_knows_which_containers_hold_an_address(tmp_path):
    config = conf(tmp_path)
    call("ADD", config, "c1")
    assert call("CHECK", config, "c1") == (0, None)
    code, err = call("CHECK", config, "c2")
    assert (code, err["code"]) == (1, skeleton.UNKNOWN_CONTAINER)


@pytest.mark.parametrize("ipam, words", [
    ({"type": "testbed-calico-blocks", "blocks": ["10.1.0.0/30"]}, "ipam.dataDir"),
    ({"type": "testbed-calico-blocks", "blocks": [], "dataDir": "/x"}, "non-empty list"),
    ({"type": "testbed-calico-blocks", "blocks": ["10.1.0.1/30"], "dataDir": "/x"},
     "ipam.blocks"),
])
def test_bad_configuration_is_a_spec_error(ipam, words):
    code, err = call("ADD", {**conf("/x"), "ipam": ipam})
    assert (code, err["code"]) == (1, skeleton.INVALID_CONFIG) and words in err["msg"]
