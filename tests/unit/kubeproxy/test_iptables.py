"""kube-proxy's iptables rules as the testbed renders them: names, probabilities, NAT."""
from testbed.kubeproxy import iptables as kubeproxy
from testbed.kubeproxy.types import ServicePort


def render(ports, held=None):
    """(full restore input, its chains) for these ports on a node holding `held`."""
    chains = kubeproxy.ruleset(ports, "10.244.0.0/16")
    return kubeproxy.restore_input(chains, held), chains


def service_chains(chains):
    return [c for c in chains if c not in kubeproxy.TOP_CHAINS]


WEB = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 0, False,
                  (("10.244.0.5", 8080), ("10.244.1.5", 8080), ("10.244.1.6", 8080)))


def test_chain_names_hash_as_kube_proxy_does():
    # kube-proxy's chains for the API server's and cluster DNS's services on every cluster
    api = ServicePort("default", "kubernetes", "https", "tcp", "10.96.0.1", 443, 0, False, ())
    dns = ServicePort("kube-system", "kube-dns", "dns", "udp", "10.96.0.10", 53, 0, False, ())
    assert kubeproxy.svc_chain(api) == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert kubeproxy.svc_chain(dns) == "KUBE-SVC-TCOU7JCQXEZGVUNU"


def test_endpoints_are_picked_with_equal_chances_and_dnatted():
    text, chains = render([WEB])
    svc = kubeproxy.svc_chain(WEB)
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    picks = [line for line in lines if line.startswith(f"-A {svc} ") and "KUBE-SEP-" in line]
    assert ["--probability 0.3333333333" in picks[0], "--probability 0.5000000000" in picks[1],
            "statistic" not in picks[2]] == [True, True, True]
    for ip in ("10.244.0.5", "10.244.1.5", "10.244.1.6"):
        sep = kubeproxy.sep_chain(WEB, (ip, 8080))
        assert f"-A {sep} -s {ip}/32" in text and f"--to-destination {ip}:8080" in text
    assert (f"-A KUBE-SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 80 "
            f'-m comment --comment "shop/web:http cluster IP" -j {svc}') in text
    assert f"-A {svc} ! -s 10.244.0.0/16 -d 10.96.0.11/32" in text  # masquerade from outside
    assert "-j MASQUERADE --random-fully" in text
    services = [line for line in lines if line.startswith("-A KUBE-SERVICES ")]
    assert services[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")  # the last
    assert len(service_chains(chains)) == 4


def test_node_ports_and_client_ip_affinity():
    sp = ServicePort("shop", "web", "", "tcp", "10.96.0.11", 80, 30080, True,
                     (("10.244.0.5", 8080),))
    text, _ = render([sp])
    ext, sep = kubeproxy.ext_chain(sp), kubeproxy.sep_chain(sp, ("10.244.0.5", 8080))
    assert "-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080" in text and f"-j {ext}" in text
    assert f"-A {ext} -j {kubeproxy.svc_chain(sp)}" in text
    assert f"--name {sep} --mask 255.255.255.255 --rsource --rcheck --seconds 10800" in text
    assert f"--name {sep} --mask 255.255.255.255 --rsource --set -j DNAT" in text


def test_chains_that_went_away_are_deleted_and_empty_services_skipped():
    _, chains = render([WEB])
    empty = ServicePort("shop", "web", "http", "tcp", "10.96.0.11", 80, 0, False, ())
    text, now = render([empty], held=chains)
    assert service_chains(now) == []
    for chain in service_chains(chains):
        assert f":{chain} - [0:0]" in text and f"-X {chain}" in text


def test_sctp_ports_get_the_same_rules_with_sctp_matches():
    sp = ServicePort("x", "s-x-a", "service-port-sctp-80", "sctp", "10.96.0.12", 80, 30081,
                     False, (("10.244.0.5", 80),))
    text, _ = render([sp])
    assert "-A KUBE-SERVICES -d 10.96.0.12/32 -p sctp -m sctp --dport 80" in text
    assert "-A KUBE-NODEPORTS -p sctp -m sctp --dport 30081" in text
    sep = kubeproxy.sep_chain(sp, ("10.244.0.5", 80))
    assert f'-A {sep} -p sctp -m sctp -m comment --comment "x/s-x-a:service-port-sctp-80" ' \
        "-j DNAT --to-destination 10.244.0.5:80" in text


def test_a_partial_sync_writes_the_top_chains_and_only_what_changed():
    other = ServicePort("shop", "db", "", "tcp", "10.96.0.12", 5432, 0, False,
                        (("10.244.0.7", 5432),))
    held = kubeproxy.ruleset([WEB, other], "10.244.0.0/16")
    moved = ServicePort("shop", "db", "", "tcp", "10.96.0.12", 5432, 0, False,
                        (("10.244.0.8", 5432),))  # its endpoint moved
    now = kubeproxy.ruleset([WEB, moved], "10.244.0.0/16")
    text = kubeproxy.restore_input(now, held, partial=True)
    declared = {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}
    old_sep = kubeproxy.sep_chain(other, ("10.244.0.7", 5432))
    new_sep = kubeproxy.sep_chain(moved, ("10.244.0.8", 5432))
    # the top chains always, db's service chain (it jumps elsewhere now), its new endpoint,
    # and the old endpoint to delete; none of web's unchanged chains
    assert declared == {*kubeproxy.TOP_CHAINS, kubeproxy.svc_chain(moved), new_sep, old_sep}
    assert f"-X {old_sep}" in text and "-A KUBE-SERVICES" in text
    assert not any(kubeproxy.svc_chain(WEB) in line for line in text.splitlines()
                   if not line.startswith("-A KUBE-SERVICES"))
    # what a node ends up with is what a full restore gives it
    full = kubeproxy.restore_input(now, held)
    assert set(full.splitlines()) >= set(text.splitlines())
