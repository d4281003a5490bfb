"""Rule-level edits of a node's policy table: only what a change touches, by handle."""
from testbed.policy import edits

TABLE = "ip calico"
HELD = {
    "forward": ["ct state established,related accept", 'iifname vmap { "cali5" : jump x }'],
    "cali-tw-cali5": ["meta mark set meta mark & 0xfffeffff",
                      "jump cali-pi-cali5-default/a", "meta mark & 0x10000 == 0x10000 return",
                      'counter drop comment "default/db: no policy allows this ingress"'],
    "cali-pi-cali5-default/a": ["ip saddr { 10.244.1.6 } meta mark set meta mark | 0x10000 return"],
}
HANDLES = {"forward": [4, 5], "cali-tw-cali5": [10, 11, 12, 13], "cali-pi-cali5-default/a": [20]}


def with_policy_b():
    table = {c: list(r) for c, r in HELD.items()}
    table["cali-tw-cali5"][3:3] = ["jump cali-pi-cali5-default/b",
                                   "meta mark & 0x10000 == 0x10000 return"]
    table["cali-pi-cali5-default/b"] = ["meta l4proto tcp th dport { 80 } meta mark set meta "
                                        "mark | 0x10000 return"]
    return table


def test_a_new_policy_adds_its_chain_and_two_rules_before_the_drop():
    change = edits.edit(TABLE, HELD, HANDLES, with_policy_b())
    assert change.text.splitlines() == [
        "add chain ip calico cali-pi-cali5-default/b",
        "add rule ip calico cali-pi-cali5-default/b meta l4proto tcp th dport { 80 } meta mark "
        "set meta mark | 0x10000 return",
        "insert rule ip calico cali-tw-cali5 position 13 jump cali-pi-cali5-default/b",
        "insert rule ip calico cali-tw-cali5 position 13 meta mark & 0x10000 == 0x10000 return",
    ]
    echo = ("add chain ip calico cali-pi-cali5-default/b # handle 30\n"
            "add rule ip calico cali-pi-cali5-default/b meta l4proto tcp # handle 31\n"
            "insert rule ip calico cali-tw-cali5 handle 13 jump x # handle 32\n"
            "insert rule ip calico cali-tw-cali5 handle 13 meta mark # handle 33\n"
            "# new generation 9 by process 1 (nft)\n")
    assert change.handles_after(echo) == {"cali-pi-cali5-default/b": [31],
                                          "cali-tw-cali5": [10, 11, 12, 32, 33, 13]}


def test_a_removed_policy_loses_its_rules_by_handle_and_its_chain_last():
    table = with_policy_b()
    handles = {**HANDLES, "cali-pi-cali5-default/b": [31],
               "cali-tw-cali5": [10, 11, 12, 32, 33, 13]}
    change = edits.edit(TABLE, table, handles, HELD)
    assert change.text.splitlines() == [
        "delete rule ip calico cali-tw-cali5 handle 32",
        "delete rule ip calico cali-tw-cali5 handle 33",
        "delete chain ip calico cali-pi-cali5-default/b",
    ]
    assert change.handles_after("") == {"cali-tw-cali5": [10, 11, 12, 13]}
    assert edits.edit(TABLE, HELD, HANDLES, HELD).text == ""  # nothing changed


def test_a_pod_no_longer_isolated_loses_its_endpoint_chain_before_the_policys():
    table = {"forward": ["ct state established,related accept"]}
    change = edits.edit(TABLE, HELD, HANDLES, table)
    assert change.text.splitlines() == [
        "delete rule ip calico forward handle 5",
        "delete chain ip calico cali-tw-cali5",             # it jumps to the next one
        "delete chain ip calico cali-pi-cali5-default/a",
    ]
    reordered = {"cali-pi-cali5-default/a": HELD["cali-pi-cali5-default/a"],
                 **{c: r for c, r in HELD.items() if c != "cali-pi-cali5-default/a"}}
    assert edits.edit(TABLE, reordered, HANDLES, table).text == change.text


def test_a_changed_rule_is_replaced_where_it_stood():
    table = {**HELD, "forward": [HELD["forward"][0], 'iifname vmap { "cali5" : jump y }']}
    change = edits.edit(TABLE, HELD, HANDLES, table)
    assert change.text.splitlines() == [
        "add rule ip calico forward iifname vmap { \"cali5\" : jump y }",
        "delete rule ip calico forward handle 5"]


def test_handles_are_read_from_a_listing():
    listing = """table ip calico { # handle 3
\tchain forward { # handle 1
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state established,related accept # handle 4
\t}
\tchain "cali-pi-cali5-default/a" { # handle 7
\t\tip saddr { 10.244.1.6 } meta mark set meta mark | 0x00010000 return # handle 20
\t}
}
"""
    assert edits.listed_handles(listing) == {"forward": [4], "cali-pi-cali5-default/a": [20]}
