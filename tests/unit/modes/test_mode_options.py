"""Each mode's own topology key, read by the mode's reader (Mode.options) with the spec."""
import textwrap

import pytest

from testbed.errors import SpecError
from testbed.model import spec as specmod
from testbed.modes import get_mode, mode_names, option_readers
from testbed.modes.base import Mode, register


def parse(text):
    return specmod.parse(textwrap.dedent(text), "topo.yaml", known_modes=mode_names(),
                         options=option_readers())


def error_of(text):
    with pytest.raises(SpecError) as info:
        parse(text)
    return info.value


def test_the_modes_own_their_keys():
    assert set(option_readers()) == {"bgp", "ebpf", "flannel", "udp"}
    for name in ("udp", "udp-gso", "vxlan", "host-gw"):
        assert "flannel" in get_mode(name).options


def test_route_reflectors_must_be_nodes_and_cover_every_rack():
    spec = parse("bgp: {routeReflectors: [a]}\nnodes: [{name: a}, {name: b}, {name: c}]")
    assert get_mode("bgp").option(spec, "bgp").route_reflectors == ("a",)
    err = error_of("bgp: {routeReflectors: [zz]}\nnodes: [{name: a}]")
    assert err.field == "bgp.routeReflectors[0]" and "no such node" in str(err)
    err = error_of("racks: [{name: r1}, {name: r2}]\nbgp: {routeReflectors: [a]}\n"
                   "nodes: [{name: a, rack: r1}, {name: b, rack: r2}]")
    assert "none in r2" in str(err)


def test_the_bgp_hold_time_is_short_unless_the_topology_says_otherwise():
    bgp = get_mode("bgp")
    assert bgp.option(parse("nodes: [{name: a}]"), "bgp").hold_time == 9
    calicos = parse("bgp: {holdTime: 240}\nnodes: [{name: a}]")
    assert bgp.option(calicos, "bgp").hold_time == 240
    for bad in ("2", "true", "9.5", "70000"):
        err = error_of(f"bgp: {{holdTime: {bad}}}\nnodes: [{{name: a}}]")
        assert err.field == "bgp.holdTime" and "from 3 to 65535" in str(err)


def test_udp_offload_is_off_unless_the_topology_turns_it_on():
    udp = get_mode("udp")
    assert udp.option(parse("nodes: [{name: a}]"), "udp").offload is False  # flannel's loop
    assert udp.option(parse("udp: {offload: true}\nnodes: [{name: a}]"), "udp").offload is True
    err = error_of("udp: {offload: 'no'}\nnodes: [{name: a}]")
    assert (err.field, err.value) == ("udp.offload", "no") and "true or false" in str(err)
    err = error_of("udp: {offlaod: false}\nnodes: [{name: a}]")
    assert err.field == "udp.offlaod" and "unknown key" in str(err)
    err = error_of("flannel: on\nnodes: [{name: a}]")
    assert (err.field, err.value) == ("flannel", True) and "mapping" in str(err)


def test_a_spec_made_without_the_readers_gives_each_modes_defaults():
    bare = specmod.parse("nodes: [{name: a}]", "t.yaml")
    assert bare.options == {}
    assert get_mode("ebpf").routing(bare) == "native"
    assert get_mode("vxlan").option(bare, "flannel").ip_masq is True


def test_a_key_two_modes_read_differently_is_refused_when_the_second_registers():
    class Claiming(Mode):
        name = "claims-bgp"
        options = {"bgp": lambda section: None}

    with pytest.raises(RuntimeError, match="claims-bgp reads topology key 'bgp', which mode "
                                           "bgp reads otherwise"):
        register(Claiming)
    assert "claims-bgp" not in mode_names()
