"""The runtime's CNI caller: error results and plugin lookup, without root."""
import json

import pytest

from testbed.cni import caller


def test_plugin_error_json_is_shown_with_its_details():
    out = json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "failed to allocate",
                      "details": "no IP addresses available in range set"})
    assert caller.plugin_error_message(out, "") == \
        "failed to allocate (no IP addresses available in range set)"


def test_plugin_error_without_json_falls_back_to_stderr():
    assert caller.plugin_error_message("", "boom\n") == "boom"


def test_missing_plugin_is_named(tmp_path):
    with pytest.raises(caller.CNIError, match="'nosuch' not found"):
        caller.find_plugin("nosuch", (str(tmp_path),))
