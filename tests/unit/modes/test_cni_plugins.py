"""Each mode names its own CNI plugins (the install step writes a launcher for each): every
`cni/` requirement of the testbed's own plugins is named by its mode, and every module named
runs as a plugin (answers VERSION as the CNI spec asks); every requirement a mode declares is
a check doctor makes."""
import json
import os
import subprocess
import sys

import pytest

import testbed
from testbed.host.probes import Probe
from testbed.modes import base
from testbed.modes.__main__ import main as list_plugins

REPO = os.path.dirname(os.path.dirname(os.path.abspath(testbed.__file__)))


def test_every_own_plugin_a_mode_requires_is_named_by_it():
    for name in base.mode_names():
        mode = base.get_mode(name)
        own = {r.split("/", 1)[1] for r in mode.requires
               if r.startswith("cni/testbed-")}
        assert own <= set(mode.cni_plugins), (name, own)
    assert set(base.cni_plugins()) == {"testbed-calico", "testbed-calico-blocks",
                                       "testbed-ovs", "testbed-cilium"}


def test_each_named_module_answers_version_as_a_plugin(capsys):
    assert list_plugins(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(base.cni_plugins())
    for line in lines:
        name, module = line.split()
        proc = subprocess.run([sys.executable, "-S", "-m", module], input="{}",
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, "CNI_COMMAND": "VERSION",
                                   "PYTHONPATH": REPO})
        assert proc.returncode == 0, (name, proc.stderr)
        assert "1.0.0" in json.loads(proc.stdout)["supportedVersions"], name
    assert list_plugins(["nonsense"]) == 2


def test_every_requirement_of_a_mode_is_a_check_doctor_makes():
    """A name doctor does not probe would read "missing" and refuse the mode for nothing."""
    from testbed.lifecycle import doctor
    known = {probe.name for probe in doctor.all_probes()}
    for name in base.mode_names():
        mode = base.get_mode(name)
        assert set(mode.requires) <= known, name
        assert {f"cni/{plugin}" for plugin in mode.cni_plugins} <= known, name
    assert len(known) == len(doctor.all_probes())  # each probe once


def test_a_mode_requiring_what_no_probe_looks_for_is_refused_when_it_registers():
    class Misspelt(base.Mode):
        name = "misspelt"
        requires = ("veth", "vxaln")

    with pytest.raises(RuntimeError, match="misspelt requires 'vxaln', which no doctor probe"):
        base.register(Misspelt)

    class OwnProbe(base.Mode):
        name = "own-probe"
        requires = ("veth", "frobnicator", "cni/own-plugin")
        probes = (Probe("frobnicator", "binary", "the own-probe mode"),)
        cni_plugins = {"own-plugin": "nowhere"}

    try:
        base.register(OwnProbe)
        assert "own-probe" in base.mode_names()
        assert {"frobnicator", "cni/own-plugin"} <= {p.name for p in base.probes()}
    finally:
        base._REGISTRY.pop("own-probe", None)
