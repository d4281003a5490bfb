"""The commands the pages show, run for real: the README's tour and the NetworkPolicy page's
example, in order, each as a user would type it (with a cluster name of the test's own)."""
import ipaddress
import os
import re
import shlex
import subprocess
import sys

from testbed.host.waiting import wait_until
from testbed.model.state import RUN_ROOT

from .conftest import REPO, Footprint, run_testbed, unique_name

KUBECTL = os.path.join(os.path.dirname(sys.executable), "kubectl")


def block_after(page, heading, prompt="", programs=("testbed",)):
    """The command lines of the first sh/console block after `heading` (console: the lines
    after the `# ` prompt) that start with one of `programs`, each as (program, argv after
    it), with what it printed on the page."""
    text = (REPO / page).read_text().split(heading, 1)[1]
    block = re.search(r"^```(?:sh|console)\n(.*?)^```", text, re.M | re.S).group(1)
    out, current = [], None
    for line in block.splitlines():
        words = shlex.split(line[len(prompt):].split("  #")[0]) \
            if line.startswith(prompt) else []
        if words and words[0] in programs:
            current = [(words[0], words[1:]), []]
            out.append(current)
        elif current is not None:
            current[1].append(line)
    return out


def renamed(argv, name):
    """argv with the cluster name after --name replaced by the test's own."""
    return [name if i and argv[i - 1] == "--name" else word for i, word in enumerate(argv)]


def only_cluster_soon():
    """The tour's commands name no cluster, as a user with one cluster types them: no other
    test's cluster may still be there (one whose teardown is finishing gets 30 s)."""
    assert wait_until(lambda: not os.listdir(RUN_ROOT) if os.path.isdir(RUN_ROOT) else True,
                      30, 0.2), f"other clusters are running: {os.listdir(RUN_ROOT)}"


def test_the_readmes_tour_runs_as_shown(require):
    require("vxlan", "bridge", "veth", "nsd")
    only_cluster_soon()
    before, name = Footprint(), unique_name()
    commands = block_after("README.md", "## A five-minute tour",
                           programs=("testbed", "kubectl", "export"))
    assert [argv[0] for (program, argv), _ in commands][:2] == ["doctor", "up"]
    outputs, env = {}, dict(os.environ)
    try:
        for (program, shown_argv), _shown in commands:
            argv = renamed(shown_argv, name)
            if program == "export":  # the kubeconfig `testbed up` names, of the test's cluster
                variable, path = argv[0].split("=", 1)
                assert variable == "KUBECONFIG"
                assert path == f"{RUN_ROOT}/tour/control-plane/kubeconfig"
                env["KUBECONFIG"] = path.replace("/tour/", f"/{name}/")
                assert os.path.exists(env["KUBECONFIG"])
                continue
            if program == "kubectl":
                proc = subprocess.run([KUBECTL, *argv], capture_output=True, text=True,
                                      timeout=120, env=env, cwd=REPO)
            else:
                proc = run_testbed(*argv, timeout=180)
            assert proc.returncode == 0, f"{program} {' '.join(argv)}: {proc.stderr}"
            outputs[f"{program} {' '.join(shown_argv)}"] = proc.stdout
    finally:
        run_testbed("down", "--name", name)

    def output(start):
        return next(out for line, out in outputs.items() if line.startswith(start))
    assert sum(line.startswith("kubectl ") for line in outputs) >= 9
    nodes = output("kubectl get nodes -o wide").splitlines()[1:]
    assert [line.split()[:2] for line in nodes] == [[f"node{i}", "Ready"] for i in range(1, 5)]
    assert "1 received" in output("kubectl exec node1-pod1 -- ping")
    assert 'deployment "web" successfully rolled out' in output("kubectl rollout status")
    assert output("kubectl exec node1-pod1 -- curl").startswith("web-")  # a Deployment's pod
    cluster_ip = re.search(r"^web\s+ClusterIP\s+(10\.\d+\.\d+\.\d+)\s",
                           output("kubectl get svc -n shop"), re.M).group(1)
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network("10.96.0.0/12")
    assert output("kubectl exec node1-pod1 -- dig").strip() == cluster_ip
    described = output("kubectl describe svc web -n shop")
    assert re.search(rf"^IP:\s+{re.escape(cluster_ip)}$", described, re.M)
    assert re.search(r"^Endpoints:\s+10\.244\.\d+\.\d+:8080,10\.244\.", described, re.M)
    assert "vxlan id 1" in output("testbed exec node1 -- ip -d link show flannel.1")
    traced = output("testbed trace node1-pod1 node4-pod2")
    assert "  router  " in traced and "flannel.1" in traced
    assert traced.splitlines()[-1].startswith("DELIVERED: delivered to node4-pod2")
    assert Footprint().leftovers(before) == []


def test_the_network_policy_example_decides_as_the_page_shows(require):
    require("bird", "birdc", "veth", "nftables")
    before, name = Footprint(), unique_name()
    commands = block_after("docs/network-policy.md", "The example of Kubernetes' documentation",
                           prompt="# ")
    try:
        for (_program, argv), shown in commands:
            argv = renamed(argv, name)
            proc = run_testbed(*argv, timeout=180)
            verdict = [line for line in shown if line in ("ALLOWED", "DENIED")]
            if verdict:  # policy check: exit 0 allowed, 1 denied, and the page's verdict
                assert proc.stdout.splitlines()[-1] == verdict[0], proc.stdout
                assert proc.returncode == (0 if verdict[0] == "ALLOWED" else 1)
                assert proc.stdout.splitlines()[2] == shown[2], "the deciding line"
            else:
                assert proc.returncode == 0, f"testbed {' '.join(argv)}: {proc.stderr}"
                for line in shown:
                    if line.endswith(" created"):
                        assert line in proc.stdout
                if argv[0] == "exec":  # what a pod printed, exactly as shown
                    assert proc.stdout.splitlines() == shown
    finally:
        run_testbed("down", "--name", name)
    assert Footprint().leftovers(before) == []
