"""A Service's IP families, settled as kube-apiserver settles them on create."""
import pytest

from testbed.manifests.families import FamilyError, settle

DUAL, V4, V6 = ("IPv4", "IPv6"), ("IPv4",), ("IPv6",)


@pytest.mark.parametrize("families, policy, ips, cluster, want", [
    ([], "", [], V4, (V4, "SingleStack")),                   # nothing asked: the primary
    ([], "", [], DUAL, (V4, "SingleStack")),
    ([], "PreferDualStack", [], DUAL, (DUAL, "PreferDualStack")),
    ([], "PreferDualStack", [], V4, (V4, "PreferDualStack")),  # prefer: what there is
    ([], "RequireDualStack", [], DUAL, (DUAL, "RequireDualStack")),
    (["IPv6"], "", [], DUAL, (V6, "SingleStack")),
    (["IPv6", "IPv4"], "", [], DUAL, (("IPv6", "IPv4"), "RequireDualStack")),  # two: require
    (["IPv6"], "PreferDualStack", [], DUAL, (("IPv6", "IPv4"), "PreferDualStack")),
    ([], "", ["fd00:10:96::5"], DUAL, (V6, "SingleStack")),  # families follow clusterIPs
    ([], "", ["10.96.0.5", "fd00:10:96::5"], DUAL, (DUAL, "RequireDualStack")),
    ([], "", ["None"], V4, (V4, "SingleStack")),               # headless, with a selector
])
def test_defaulting_as_the_api_server(families, policy, ips, cluster, want):
    settled = settle(families, policy, ips, True, cluster)
    assert (settled.families, settled.policy) == want


def test_a_headless_service_without_selector_may_have_families_the_cluster_lacks():
    settled = settle([], "PreferDualStack", ["None"], False, V4)
    assert settled.families == DUAL


@pytest.mark.parametrize("families, policy, ips, cluster, words", [
    ([], "RequireDualStack", [], V4, 'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": '
     "this cluster is not configured for dual-stack services"),
    (["IPv6"], "", [], V4, 'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this '
     "cluster"),
    (["IPv4", "IPv6"], "SingleStack", [], DUAL, 'spec.ipFamilyPolicy: Invalid value: '
     '"SingleStack": must be RequireDualStack or PreferDualStack when multiple IP families'),
    (["IPv4", "IPv4"], "", [], DUAL, 'spec.ipFamilies[1]: Duplicate value: "IPv4"'),
    (["IPv5"], "", [], DUAL, 'spec.ipFamilies[0]: Unsupported value: "IPv5"'),
    ([], "Dual", [], DUAL, 'spec.ipFamilyPolicy: Unsupported value: "Dual": supported values: '
     '"PreferDualStack", "RequireDualStack", "SingleStack"'),
    (["IPv4"], "", ["fd00:10:96::5"], DUAL, 'spec.ipFamilies[0]: Invalid value: "IPv4": must '
     "match IP family of clusterIP"),
])
def test_refusals_in_the_api_server_s_words(families, policy, ips, cluster, words):
    with pytest.raises(FamilyError) as refused:
        settle(families, policy, ips, True, cluster)
    assert str(refused.value).startswith(words)
