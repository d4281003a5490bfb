"""What a cluster tells about itself: every log by name (kube-proxy's syncs, BIRD's, the
containers'), followed as it grows; events; describe of a node, a pod and a Service with
what the kernel holds there."""
import json
import os
import signal
import subprocess
import sys
import time

from testbed import manifests
from testbed.api import apply

from .conftest import REPO, TOPO, run_testbed
from .test_manifests import SHOP

WEB2 = """\
apiVersion: v1
kind: Service
metadata: {name: web2, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 81, targetPort: 8080}]
"""


def test_logs_events_and_describe_of_a_running_cluster(make_cluster, tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP.replace("REPLICAS", "2"))
    topo = tmp_path / "t.yaml"
    topo.write_text((TOPO / "default.yaml").read_text() + "manifests: [shop.yaml]\n")
    cluster = make_cluster(topo, "bgp")
    name = cluster.spec.name
    listed = run_testbed("logs", "--name", name, check=True).stdout
    for log in ("kube-proxy@node1", "kube-proxy@node2", "bird@node1", "bird@node2"):
        assert f"\n{log} " in listed, listed
    assert "default/node1-pod1" in listed and "shop/web-" in listed
    synced = run_testbed("logs", "kube-proxy@node1", "--name", name, check=True).stdout
    last = synced.splitlines()[-3:]
    assert '"Syncing iptables rules"' in last[0]
    # shop's web and sticky (two endpoints each), kube-dns (53/udp, 53/tcp: one each), the
    # API server's kubernetes (443, none)
    assert '"Reloading service iptables data" numServices=4 numServicePorts=5 ' \
           'numEndpoints=6' in last[1]
    assert '"SyncProxyRules complete"' in last[2] and 'elapsed="' in last[2]
    assert "<INFO> Started" in run_testbed("logs", "bird@node1", "--name", name,
                                           check=True).stdout  # BIRD's own log
    previous = run_testbed("logs", "node1-pod1", "--previous", "--name", name)
    assert previous.returncode == 2 and 'previous terminated container "main" in pod ' \
        '"node1-pod1" not found' in previous.stderr
    unknown = run_testbed("logs", "nope@node1", "--name", name)
    assert unknown.returncode == 2 and "no log of cluster" in unknown.stderr

    # --follow prints what a later sync appends
    follow = subprocess.Popen([sys.executable, "-m", "testbed.cli", "logs", "kube-proxy@node2",
                               "-f", "--name", name], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        time.sleep(1)
        (tmp_path / "web2.yaml").write_text(WEB2)
        apply.apply(cluster, manifests.load(str(tmp_path / "web2.yaml")))
        deadline = time.monotonic() + 10
        seen = ""
        while "numServices=5" not in seen and time.monotonic() < deadline:
            seen += follow.stdout.readline()
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=10)
    assert "numServices=5" in seen and follow.returncode == 0

    # events: the pods' start, the Service applied, a daemon's death and restart
    bird = cluster.mode.daemons(cluster.context)["bird@node2"]
    os.kill(bird, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and cluster.check_daemons()["bird@node2"].alive:
        time.sleep(0.1)
    cluster.restart_daemon("node2")
    events = json.loads(run_testbed("get", "events", "-A", "-o", "json", "--name", name,
                                    check=True).stdout)
    said = {(e["reason"], e["object"]) for e in events}
    assert ("Scheduled", "pod/default/node1-pod1") in said
    assert ("Created", "service/shop/web2") in said
    assert ("DaemonDied", "daemon/bird@node2") in said and \
        ("Restarted", "daemon/bird@node2") in said

    node = run_testbed("describe", "node", "node2", "--name", name, check=True).stdout
    assert "InternalIP:  " + cluster.state.nodes["node2"].ip in node
    assert "Warning   DaemonDied" in node and "Restarted" in node
    assert "\nRoutes:\n" in node and "proto bird" in node.split("\nRoutes:\n")[1]
    assert "cali" in node.split("\nInterfaces:\n")[1]
    pod = run_testbed("describe", "pod", "node1-pod1", "--name", name, check=True).stdout
    assert "Scheduled" in pod and "Successfully assigned default/node1-pod1 to node1" in pod
    interfaces = pod.split("\nInterfaces:\n")[1].split("\nRoutes:\n")[0]
    assert "eth0" in interfaces and cluster.state.pods["default/node1-pod1"].ip in interfaces
    assert "default via 169.254.1.1 dev eth0" in pod.split("\nRoutes:\n")[1]
    svc = run_testbed("describe", "svc", "web2", "-n", "shop", "--name", name,
                      check=True).stdout
    saved = run_testbed("exec", "node1", "--name", name, "--", "iptables-save", "-t", "nat",
                        check=True).stdout
    chains = [line.strip().split()[0] for line in svc.splitlines()
              if line.startswith("  KUBE-")]
    assert len(chains) == 3 and all(f":{chain} " in saved for chain in chains)
