"""The built-in stand-ins for container images: which one a container gets, and that they
answer as agnhost and nginx do (on 127.0.0.1, no root needed)."""
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from testbed.manifests import Container, ContainerPort
from testbed.workloads import command_for


def test_images_map_to_their_stand_ins():
    agnhost = Container("a", "registry.k8s.io/e2e-test-images/agnhost:2.47",
                        args=("netexec", "--http-port=8080"))
    argv, warning = command_for(agnhost, "web-1")
    assert argv[-2:] == ["netexec", "--http-port=8080"] and warning is None
    assert argv[argv.index("--hostname") + 1] == "web-1"
    nginx = Container("n", "nginx:1.27", ports=(ContainerPort(8080),))
    assert command_for(nginx, "p")[0][-3:] == ["http", "--port", "8080"]
    busybox = Container("b", "busybox", command=("sh", "-c"), args=("sleep 5",))
    assert command_for(busybox, "p") == (["sh", "-c", "sleep 5"], None)
    assert command_for(Container("b", "busybox:1.36"), "p") == (["sleep", "infinity"], None)
    argv, warning = command_for(Container("x", "example.com/shop/cart:v3"), "p")
    assert argv == ["sleep", "infinity"] and "cart:v3 has no built-in workload" in warning
    argv, warning = command_for(Container("a", "agnhost:2.47", args=("pause",)), "p")
    assert argv == ["sleep", "infinity"] and "agnhost pause is not built in" in warning


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def workload():
    procs = []

    def start(*args):
        proc = subprocess.Popen([sys.executable, "-m", "testbed.workloads", "--hostname",
                                 "web-7d4b9-x2kqp", "--bind", "127.0.0.1", *args],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert "for web-7d4b9-x2kqp" in proc.stdout.readline()
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def get(port, path):
    deadline = time.monotonic() + 5
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_netexec_answers_its_endpoints_on_http_and_udp(workload):
    http_port, udp_port = free_port(), free_port()
    workload("netexec", f"--http-port={http_port}", f"--udp-port={udp_port}")
    assert get(http_port, "/hostname") == "web-7d4b9-x2kqp"
    assert get(http_port, "/echo?msg=hello") == "hello"
    assert get(http_port, "/clientip").startswith("127.0.0.1:")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"echo ping", ("127.0.0.1", udp_port))
        assert s.recv(100) == b"ping"


def test_serve_hostname_and_nginx_name_the_pod(workload):
    a, b = free_port(), free_port()
    workload("serve-hostname", "--port", str(a))
    workload("http", "--port", str(b))
    assert get(a, "/") == "web-7d4b9-x2kqp"
    assert "Welcome to nginx!" in get(b, "/") and "web-7d4b9-x2kqp" in get(b, "/")


def test_the_ports_a_stand_in_listens_on_are_known_before_it_starts():
    from testbed.workloads import tcp_ports
    netexec = Container("a", "agnhost", args=("netexec", "--http-port=8081"))
    assert tcp_ports(command_for(netexec, "p")[0]) == [8081]
    assert tcp_ports(command_for(Container("a", "agnhost", args=("serve-hostname",)), "p")[0]) \
        == [9376]
    nginx = Container("n", "nginx", ports=(ContainerPort(8080),))
    assert tcp_ports(command_for(nginx, "p")[0]) == [8080]
    assert tcp_ports(["sleep", "infinity"]) == []
