"""BIRD's configuration for nodes and rack routers: what each session announces, checked
against BIRD's own parser (`bird -p`) where BIRD is installed."""
import shutil
import subprocess

import pytest

from testbed.modes.bgp.bird import NODE_AS, ROUTER_AS, node_config, router_config

PEERS = [("node_node2", "192.168.1.12", NODE_AS, True),
         ("node_node3", "192.168.1.13", NODE_AS, False),
         ("rack_router", "192.168.1.1", ROUTER_AS, False)]


def session(text, name):
    return text.split(f"protocol bgp {name} {{", 1)[1].split("\n}\n", 1)[0]


def parses(tmp_path, text):
    if not shutil.which("bird"):
        pytest.skip("bird (BIRD 2) is not installed")
    path = tmp_path / "bird.conf"
    path.write_text(text.replace('log "/x/bird.log" all;', f'log "{tmp_path}/log" all;'))
    proc = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True)
    return proc.returncode == 0 and "deprecated" not in proc.stderr, proc.stderr


def test_a_node_announces_its_blocks_as_blackholes_and_only_them(tmp_path):
    plain = [(name, ip, peer_as, False) for name, ip, peer_as, _client in PEERS]
    text = node_config("192.168.1.11", ["10.244.0.0/26", "10.244.0.64/26"], NODE_AS, plain,
                       "/x/bird.log")
    assert "route 10.244.0.0/26 blackhole;" in text and "route 10.244.0.64/26 blackhole;" in text
    assert "if net ~ [ 10.244.0.0/26, 10.244.0.64/26 ] && source = RTS_STATIC" in text
    for name in ("node_node2", "node_node3", "rack_router"):
        assert "export filter own_blocks;" in session(text, name)
    # iBGP keeps the owner as next hop; eBGP to the router puts the node there
    assert "next hop self" not in session(text, "node_node2")
    assert "neighbor 192.168.1.1 as 65000;" in session(text, "rack_router")
    assert "next hop self" in session(text, "rack_router")
    assert "rr client" not in text  # no reflector here
    assert "hold time 9; keepalive time 3;" in session(text, "node_node2")  # the testbed's
    assert parses(tmp_path, text) == (True, "")
    calicos = node_config("192.168.1.11", ["10.244.0.0/26"], NODE_AS, plain, "/x/bird.log",
                          hold=240)
    assert "hold time 240; keepalive time 80;" in session(calicos, "node_node2")
    assert parses(tmp_path, calicos) == (True, "")


def test_a_reflector_passes_on_what_it_learned_to_its_ibgp_peers(tmp_path):
    text = node_config("192.168.1.11", ["10.244.0.0/26"], NODE_AS, PEERS, "/x/bird.log",
                       reflector=True)
    client = session(text, "node_node2")
    assert "rr client;" in client and "export where source ~ [RTS_STATIC, RTS_BGP];" in client
    assert "rr client" not in session(text, "node_node3")  # a reflector peer, not a client
    assert "export filter own_blocks;" in session(text, "rack_router")  # eBGP: own blocks only
    assert parses(tmp_path, text) == (True, "")


def test_the_router_peers_with_every_node_by_ebgp(tmp_path):
    text = router_config("192.168.1.1", [("node_n1", "192.168.1.1", "192.168.1.11", 65001),
                                         ("node_n4", "192.168.2.1", "192.168.2.11", 65002)],
                         "/x/bird.log")
    n4 = session(text, "node_n4")
    assert "local 192.168.2.1 as 65000;" in n4 and "neighbor 192.168.2.11 as 65002;" in n4
    assert "export all;" in n4 and "next hop self" in n4
    assert parses(tmp_path, text) == (True, "")


def test_the_parser_check_catches_a_broken_config(tmp_path):
    text = node_config("192.168.1.11", ["10.244.0.0/26"], NODE_AS, PEERS, "/x/bird.log")
    ok, errors = parses(tmp_path, text.replace("import all;", "import everything;"))
    assert not ok and "syntax error" in errors
