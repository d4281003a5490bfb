from testbed.core import doctor


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
