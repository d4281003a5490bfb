"""The built-in stand-ins for container images: which one a container gets, that they read
agnhost's flags as agnhost does, and that they answer as agnhost and nginx do (on 127.0.0.1,
no root needed)."""
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from testbed.kubelet.standins import command_for, flags, listening
from testbed.manifests.kinds import Container, ContainerPort

UPSTREAM_TCP = ("/agnhost", "serve-hostname", "--tcp", "--http=false", "--port", "80")


def test_images_map_to_their_stand_ins():
    agnhost = Container("a", "registry.k8s.io/e2e-test-images/agnhost:2.47",
                        args=("netexec", "--http-port=8080"))
    argv, warnings = command_for(agnhost, "web-1")
    assert argv[-2:] == ["netexec", "--http-port=8080"] and warnings == []
    assert argv[argv.index("--hostname") + 1] == "web-1"
    nginx = Container("n", "nginx:1.27", ports=(ContainerPort(8080),))
    assert command_for(nginx, "p")[0][-3:] == ["http", "--port", "8080"]
    busybox = Container("b", "busybox", command=("sh", "-c"), args=("sleep 5",))
    assert command_for(busybox, "p") == (["sh", "-c", "sleep 5"], [])
    assert command_for(Container("b", "busybox:1.36"), "p") == (["sleep", "infinity"], [])
    argv, warnings = command_for(Container("x", "example.com/shop/cart:v3"), "p")
    assert argv == ["sleep", "infinity"] and "cart:v3 has no built-in workload" in warnings[0]


def test_upstream_netpol_server_command_is_agnhost_with_its_path_dropped():
    argv, warnings = command_for(Container("c", "agnhost:2.47", command=UPSTREAM_TCP), "a")
    assert argv[-5:] == list(UPSTREAM_TCP[1:]) and warnings == []
    assert listening(argv) == [("tcp", 80)]
    udp = ("/agnhost", "serve-hostname", "--udp", "--http=false", "--port", "81")
    assert listening(command_for(Container("c", "agnhost", command=udp), "a")[0]) == \
        [("udp", 81)]


def test_what_the_testbed_does_not_imitate_is_a_warning_naming_it():
    _argv, warnings = command_for(Container("a", "agnhost", args=("liveness",)), "p")
    assert "agnhost liveness is not built in" in warnings[0]
    tls = Container("a", "agnhost", args=("netexec", "--tls-cert-file=/c.pem"))
    assert command_for(tls, "p")[1] == ["agnhost netexec --tls-cert-file is not imitated by "
                                        "the testbed (ignored)"]
    typo = Container("a", "agnhost", args=("serve-hostname", "--prot", "80"))
    assert "unknown flag: --prot" in command_for(typo, "p")[1][0]
    both = Container("a", "agnhost", args=("serve-hostname", "--tcp"))
    assert "cannot go with --tcp" in command_for(both, "p")[1][0]
    assert listening(command_for(both, "p")[0]) == []  # agnhost exits: nothing serves
    empty_porter = Container("a", "agnhost", args=("porter",))
    assert "no SERVE_*_PORT_<n>" in command_for(empty_porter, "p")[1][0]


def test_flags_are_read_as_pflag_reads_them():
    parsed = flags.parse("serve-hostname", ["--tcp", "--http=false", "--port", "80"])
    assert parsed.values == {"tcp": True, "udp": False, "http": False, "close": False,
                             "port": 80}
    assert flags.parse("netexec", []).values["udp-port"] == 8081  # agnhost's default
    assert flags.parse("connect", ["h:80", "--timeout=1.5s"]).values["timeout"] == 1.5
    assert flags.parse("connect", ["h:80", "--timeout", "1m30s"]).values["timeout"] == 90
    assert flags.parse("connect", ["x:1"]).args == ["x:1"]
    with pytest.raises(flags.FlagError, match="invalid argument \"maybe\""):
        flags.parse("serve-hostname", ["--tcp=maybe"])
    with pytest.raises(flags.FlagError, match="flag needs an argument: --port"):
        flags.parse("serve-hostname", ["--port"])
    with pytest.raises(flags.FlagError, match="missing unit"):
        flags.parse("connect", ["--timeout=5"])


def test_porter_serves_its_environment_ports():
    env = (("SERVE_PORT_9001", "a"), ("SERVE_UDP_PORT_9002", "b"),
           ("SERVE_SCTP_PORT_80", "foo"), ("OTHER", "x"))
    argv, warnings = command_for(Container("p", "agnhost", args=("porter",), env=env), "p")
    assert warnings == []
    assert listening(argv, env) == [("tcp", 9001), ("sctp", 80), ("udp", 9002)]


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stand_in(*args, env=None):
    return [sys.executable, "-m", "testbed.kubelet.standins", "--hostname", "web-7d4b9-x2kqp",
            "--bind", "127.0.0.1", *args]


@pytest.fixture
def workload():
    procs = []

    def start(*args, env=None):
        proc = subprocess.Popen(stand_in(*args), stdout=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        assert "for web-7d4b9-x2kqp" in proc.stdout.readline()
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def get(port, path, headers=False):
    deadline = time.monotonic() + 5
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return (r.read().decode(), dict(r.headers)) if headers else r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def udp_ask(port, text):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(text.encode(), ("127.0.0.1", port))
        return s.recv(100).decode()


def test_netexec_answers_its_endpoints_on_http_and_udp(workload):
    http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    workload("netexec", f"--http-port={http_port}", f"--udp-port={udp_port}")
    assert get(http_port, "/hostname") == "web-7d4b9-x2kqp"
    assert get(http_port, "/").startswith("NOW: ")
    assert get(http_port, "/echo?msg=hello") == "hello"
    assert get(http_port, "/clientip").startswith("127.0.0.1:")
    assert udp_ask(udp_port, "echo ping") == "ping"
    assert udp_ask(udp_port, "hostname") == "web-7d4b9-x2kqp"
    dial = get(http_port, f"/dial?request=hostname&protocol=udp&host=127.0.0.1&port={udp_port}")
    assert dial == '{"responses": ["web-7d4b9-x2kqp"]}'


def test_serve_hostname_over_raw_tcp_udp_and_http(workload):
    tcp, udp, web = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    workload("serve-hostname", "--tcp", "--http=false", "--port", str(tcp))
    workload("serve-hostname", "--udp", "--http=false", f"--port={udp}")
    workload("serve-hostname", "--close", "--port", str(web))
    with socket.create_connection(("127.0.0.1", tcp), timeout=2) as s:
        assert s.recv(100) == b"web-7d4b9-x2kqp" and s.recv(100) == b""  # then it closes
    assert udp_ask(udp, "x") == "web-7d4b9-x2kqp"
    body, headers = get(web, "/", headers=True)
    assert body == "web-7d4b9-x2kqp" and headers["Connection"] == "close"


def test_serve_hostname_refuses_http_with_tcp_as_agnhost_does():
    proc = subprocess.run(stand_in("serve-hostname", "--tcp"), capture_output=True, text=True,
                          timeout=10)
    assert proc.returncode == 1 and "HTTP mode at the same time" in proc.stderr
    proc = subprocess.run(stand_in("netexec", "--bogus"), capture_output=True, text=True,
                          timeout=10)
    assert proc.returncode == 1 and "unknown flag: --bogus" in proc.stderr


def test_porter_and_nginx(workload):
    tcp, page = free_port(), free_port()
    env = {"PATH": "/usr/bin:/bin", f"SERVE_PORT_{tcp}": "foo"}
    workload("porter", env=env)
    nginx = workload("http", "--port", str(page))
    assert get(tcp, "/anything") == "foo"
    assert "Welcome to nginx!" in get(page, "/") and "web-7d4b9-x2kqp" in get(page, "/")
    # each request on stdout in the image's log format, as `kubectl logs` shows nginx's
    logged = nginx.stdout.readline()
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:[\d:]{8} [+-]\d{4}\] '
                        r'"GET / HTTP/1\.1" 200 \d+ "-" "Python-urllib/[\d.]+" "-"\n', logged)


def test_connect_says_what_agnhost_connect_says(workload):
    port = free_port()
    workload("serve-hostname", "--tcp", "--http=false", "--port", str(port))
    ok = subprocess.run(stand_in("connect", f"127.0.0.1:{port}", "--timeout=1s"),
                        capture_output=True, text=True, timeout=10)
    closed = subprocess.run(stand_in("connect", f"127.0.0.1:{free_port()}", "--timeout=1s",
                                     "--protocol=tcp"), capture_output=True, text=True,
                            timeout=10)
    assert ok.returncode == 0 and ok.stderr == ""
    assert closed.returncode == 1 and closed.stderr.strip() == "REFUSED"
