"""Each mode names its own CNI plugins (the install step writes a launcher for each): every
`cni/` requirement of the testbed's own plugins is named by its mode, and every module named
runs as a plugin (answers VERSION as the CNI spec asks); every requirement a mode declares is
a check doctor makes."""
import json
import os
import subprocess
import sys

import testbed
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
    known = {entry[0] for entry in doctor.KERNEL + doctor.BINARIES + doctor.BUILT_FILES +
             doctor.PYTHON_MODULES} | {f"cni/{entry[0]}" for entry in doctor.CNI_PLUGINS}
    for name in base.mode_names():
        unknown = set(base.get_mode(name).requires) - known
        assert not unknown, (name, unknown)
