from testbed.lifecycle import doctor


def test_render_says_what_a_missing_feature_prevents():
    checks = [doctor.Check("vxlan", "kernel", True, "present", "the vxlan mode"),
              doctor.Check("netem", "kernel", False, "missing", "emulated delay and loss"),
              doctor.Check("mnexec", "binary", False, "not found", "Mininet nodes", True)]
    out = doctor.render(checks)
    assert "[ok  ] vxlan" in out and "the vxlan mode" not in out
    assert "[--  ] netem" in out and "without it: emulated delay and loss" in out
    assert "[FAIL] mnexec" in out  # essential pieces are marked as failures


def test_missing_for_lists_required_features_absent_from_caps():
    caps = {"vxlan": True, "tun": False}
    assert doctor.missing_for(("vxlan", "tun", "bridge"), caps) == ["tun", "bridge"]


def test_kernel_config_symbol_built_in_counts_as_present():
    assert doctor._config_has("CONFIG_FOO=y\n", "FOO", "no_such_module_dir")
    assert not doctor._config_has("# CONFIG_FOO is not set\n", "FOO", "no_such_module_dir")


def test_bpf_helpers_are_read_from_bpftool_s_probe_of_tc_programs(monkeypatch):
    import json
    import subprocess

    probe = {"helpers": {"sched_cls_available_helpers": ["bpf_redirect_peer", "bpf_fib_lookup"],
                         "xdp_available_helpers": ["bpf_redirect_neigh"]}}

    def fake_run(argv, **kwargs):
        assert argv[:3] == ["bpftool", "-j", "feature"]
        return subprocess.CompletedProcess(argv, 0, json.dumps(probe), "")

    monkeypatch.setattr(doctor.subprocess, "run", fake_run)
    found = doctor._bpf_helpers(["bpf_redirect_peer", "bpf_fib_lookup", "bpf_redirect_neigh"])
    assert found["bpf_redirect_peer"] and found["bpf_fib_lookup"]
    assert not found["bpf_redirect_neigh"]  # offered to XDP only: not to the mode's programs

    def missing_bpftool(argv, **kwargs):
        raise FileNotFoundError(argv[0])

    monkeypatch.setattr(doctor.subprocess, "run", missing_bpftool)
    assert doctor._bpf_helpers(["bpf_redirect_peer"]) == {"bpf_redirect_peer": False}
