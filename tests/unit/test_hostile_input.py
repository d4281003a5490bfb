"""Input as a hostile or careless user gives it: every case one short line naming the file,
never a traceback, a hang or a line the size of the input."""
import os
import time

import pytest

from testbed import manifests, safe_input
from testbed.errors import SpecError, TestbedError
from testbed.manifests.kinds import ManifestError
from testbed.model import spec

BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
    for i in range(9))  # 9^10 values once expanded, in 360 bytes


def pod(command="[serve]", labels="{app: web}", port_name="http"):
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: p, labels: {labels}}}
spec:
  containers:
    - name: c
      image: registry.k8s.io/e2e-test-images/agnhost:2.47
      command: {command}
      ports: [{{containerPort: 8080, name: {port_name}}}]
"""


def refused(load, path, exc=TestbedError):
    with pytest.raises(exc) as caught:
        load(str(path))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    assert str(path) in message
    return message


@pytest.mark.parametrize("load, exc", [(spec.load, SpecError),
                                       (manifests.load, ManifestError)])
def test_a_binary_file_is_refused(tmp_path, load, exc):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    assert "binary file" in refused(load, path, exc)


@pytest.mark.parametrize("load, exc", [(spec.load, SpecError),
                                       (manifests.load, ManifestError)])
def test_text_that_is_not_utf8_is_refused(tmp_path, load, exc):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    assert "not UTF-8" in refused(load, path, exc)


def test_an_endless_file_is_read_only_up_to_the_limit():
    started = time.monotonic()
    message = refused(spec.load, "/dev/zero")
    assert "larger than 16 MiB" in message or "binary" in message
    assert time.monotonic() - started < 5


def test_an_oversized_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_input, "MAX_INPUT_BYTES", 1000)
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "# padding\n" * 200)
    assert "larger than" in refused(spec.load, path)


@pytest.mark.parametrize("load", [spec.load, manifests.load])
def test_an_alias_bomb_is_refused_at_once(tmp_path, load):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.monotonic()
    assert "alias" in refused(load, path)
    assert time.monotonic() - started < 1


def test_an_alias_bomb_under_manifests_of_a_topology_is_refused(tmp_path):
    (tmp_path / "m.yaml").write_text(BOMB)
    topo = tmp_path / "t.yaml"
    topo.write_text("manifests: [m.yaml]\n")
    started = time.monotonic()
    try:
        parsed = spec.load(str(topo))
        manifests.load(os.path.join(tmp_path, parsed.manifests[0]))
    except TestbedError as e:
        assert "alias" in str(e) and "\n" not in str(e)
    else:
        pytest.fail("the bomb was accepted")
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("text", ["1: x\n", "[a, b]: x\n", "? {a: 1}\n: x\n",
                                  "nodes:\n  - {name: n1, 7: x}\n"])
def test_keys_that_are_not_strings_are_refused(tmp_path, text):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    message = refused(spec.load, path, SpecError)
    assert "keys must be strings" in message or "unhashable" in message


def test_deep_nesting_is_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(spec.load, path, SpecError)


def test_a_huge_value_is_shown_cut_short(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: " + "x" * 100_000 + "\n")
    message = refused(spec.load, path, SpecError)
    assert "100,002 characters" in message  # repr's quotes included


def test_a_nul_in_a_container_command_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(pod(command='["/agnhost", "serve\\0-hostname"]'))
    assert "NUL" in refused(manifests.load, path, ManifestError)


@pytest.mark.parametrize("port_name, ok", [
    ("http", True), ("a-b-c", True), ("web8080", True), ("x" * 15, True),
    ("x" * 16, False), ("a" * 38, False), ("8080", False), ("-http", False),
    ("http-", False), ("ht--tp", False), ("HTTP", False), ("h_t", False)])
def test_port_names_follow_the_api_servers_rule(tmp_path, port_name, ok):
    path = tmp_path / "p.yaml"
    path.write_text(pod(port_name=f'"{port_name}"'))
    if ok:
        (obj,) = manifests.load(str(path)).objects
        assert obj.template.containers[0].ports[0].name == port_name
    else:
        assert "is not a port name" in refused(manifests.load, path, ManifestError)


@pytest.mark.parametrize("labels, ok", [
    ("{app: web}", True), ("{app.kubernetes.io/name: web}", True), ('{a: ""}', True),
    ("{tier: Front_end.v1}", True), ('{app: "two words"}', False), ('{app: "a/b"}', False),
    ('{app: "-web"}', False), ('{"bad key": x}', False), ('{"a/b/c": x}', False),
    ('{"Example.com/x": y}', False), (f'{{app: "{"x" * 64}"}}', False)])
def test_labels_follow_the_api_servers_rule(tmp_path, labels, ok):
    path = tmp_path / "p.yaml"
    path.write_text(pod(labels=labels))
    if ok:
        manifests.load(str(path))
    else:
        message = refused(manifests.load, path, ManifestError)
        assert "label" in message or "prefix" in message


def test_a_nul_in_a_topology_command_is_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text('nodes:\n  - name: n1\n    pods:\n      - name: p\n        containers:\n'
                    '          - {name: c, command: ["sleep", "in\\0finity"]}\n')
    assert "NUL" in refused(spec.load, path, SpecError)


@pytest.mark.parametrize("content", [BOMB.encode(), b"\x7fELF\x00\x01", b"1: x\n",
                                     ("name: " + "x" * 100_000).encode()])
def test_the_command_answers_hostile_topologies_with_one_line_and_exit_2(tmp_path, capsys,
                                                                         monkeypatch, content):
    from testbed.cli import main as cli
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)  # refused before anything needs root
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    assert cli.main(["up", "--topo", str(path), "--no-cli"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"testbed: {path}") and err.count("\n") == 1 and len(err) < 400


def test_a_service_name_must_start_with_a_letter(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\n"
                    "spec: {selector: {app: web}, ports: [{port: 80}]}\n")
    assert "must start with a letter" in refused(manifests.load, path, ManifestError)
