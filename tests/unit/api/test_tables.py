"""Tables as kubectl prints them."""
from testbed.api.tables import render_table


def test_render_table_aligns_columns():
    out = render_table([("NAME", "IP"), ("a-long-name", "10.0.0.1")]).splitlines()
    assert out[0].index("IP") == out[1].index("10.0.0.1")
