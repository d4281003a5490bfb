import json

import pytest

from testbed import runtime
from testbed.inventory import render_table
from testbed.spec import PodSpec


def test_plugin_error_json_is_shown_with_its_details():
    out = json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "failed to allocate",
                      "details": "no IP addresses available in range set"})
    assert runtime.plugin_error_message(out, "") == \
        "failed to allocate (no IP addresses available in range set)"


def test_plugin_error_without_json_falls_back_to_stderr():
    assert runtime.plugin_error_message("", "boom\n") == "boom"


def test_missing_plugin_is_named(tmp_path):
    with pytest.raises(runtime.CNIError, match="'nosuch' not found"):
        runtime.find_plugin("nosuch", (str(tmp_path),))


def test_container_id_is_stable_and_cni_safe():
    pod = PodSpec("web-1", "shop", "n1")
    assert runtime.container_id("c1", pod) == "c1-shop-web-1"


def test_render_table_aligns_columns():
    out = render_table([("NAME", "IP"), ("a-long-name", "10.0.0.1")]).splitlines()
    assert out[0].index("IP") == out[1].index("10.0.0.1")
