"""`raftctl export compose|k8s|systemd`: the files parse, carry what the engines require, run the
right node, keep secrets private, and are never written over without --force."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from raftctl.cli import EXIT_USAGE, main
from raftctl.export import layout
from raftnode.config import parse_config
from raftnode.security.credentials import load_credentials, secrets_path

yaml = pytest.importorskip("yaml", reason="PyYAML (the test extra) reads the manifests")

CLUSTER = """\
[cluster]
name = "Shop Orders"
state_dir = "state"
client_auth = true

[[nodes]]
id = "alpha"
peer = "127.0.0.1:7301"
client = "127.0.0.1:7401"

[[nodes]]
id = "beta"
peer = "127.0.0.1:7302"
client = "127.0.0.1:7402"

[[nodes]]
id = "gamma"
peer = "127.0.0.1:7303"
client = "127.0.0.1:7403"
"""


def export(tmp_path: Path, kind: str, *extra: str, code: int = 0) -> tuple[Path, Any]:
    config = tmp_path / "cluster.toml"
    if not config.exists():
        config.write_text(CLUSTER)
    out = tmp_path / f"out-{kind}"
    result = CliRunner().invoke(main, ["--config", str(config), "export", kind, "--out", str(out), "--json", *extra])
    assert result.exit_code == code, result.output
    return out, result


def test_k8s_statefulset_has_what_the_engine_requires(tmp_path: Path) -> None:
    out, _ = export(tmp_path, "k8s", "--storage", "5Gi", "--image", "registry.example/raft:1")
    config_map, service, sts = yaml.safe_load_all((out / "cluster.yaml").read_text())
    assert [d["kind"] for d in (config_map, service, sts)] == ["ConfigMap", "Service", "StatefulSet"]
    assert all(d["apiVersion"] and d["metadata"]["name"] for d in (config_map, service, sts))
    name = sts["metadata"]["name"]
    assert name == "shop-orders"  # a DNS label
    spec = sts["spec"]
    assert sts["apiVersion"] == "apps/v1"
    assert spec["serviceName"] == service["metadata"]["name"] == name
    assert spec["replicas"] == 3
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()  # the API server rejects a mismatch
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"] == labels
    assert service["spec"]["publishNotReadyAddresses"] is True
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/raft:1"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["state"] == layout.STATE_DIR and claim["metadata"]["name"] == "state"
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert set(mounts) == set(volumes) | {"state"}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    for probe in ("readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:3] == ["python", "-m", "raftnode.probe"] and "7401" in command
    assert "--ready" in container["readinessProbe"]["exec"]["command"]
    assert "--ready" not in container["livenessProbe"]["exec"]["command"]


def test_k8s_nodes_find_each_other_through_the_headless_service(tmp_path: Path) -> None:
    out, _ = export(tmp_path, "k8s")
    config_map = next(yaml.safe_load_all((out / "cluster.yaml").read_text()))
    config = parse_config(config_map["data"]["cluster.toml"], path=layout.CONFIG_PATH)
    assert config.peer_auth and config.client_auth
    assert str(config.state_dir) == layout.STATE_DIR
    assert [str(n.peer) for n in config.nodes] == [f"shop-orders-{i}.shop-orders:7301" for i in range(3)]
    assert [n.client.port for n in config.nodes] == [7401] * 3


def test_k8s_secret_holds_the_cluster_secrets_and_is_private(tmp_path: Path) -> None:
    out, _ = export(tmp_path, "k8s")
    secret = yaml.safe_load((out / "secret.yaml").read_text())
    assert secret["kind"] == "Secret" and secret["apiVersion"] == "v1"
    assert stat.S_IMODE((out / "secret.yaml").stat().st_mode) == 0o600
    mounted = tmp_path / "mounted" / "secrets.toml"
    mounted.parent.mkdir()
    mounted.write_text(secret["stringData"]["secrets.toml"])
    mounted.chmod(0o600)
    assert load_credentials(mounted) == load_credentials(secrets_path(tmp_path / "state"))
    assert "peer_secret" not in (out / "cluster.yaml").read_text()


def fake_python(tmp_path: Path) -> Path:
    """A directory whose `python` prints its arguments as JSON (to see what a script would run)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "python"
    script.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(("hostname", "node"), [("shop-orders-0", "alpha"), ("shop-orders-2", "gamma")])
def test_k8s_pod_runs_the_node_of_its_ordinal(tmp_path: Path, hostname: str, node: str) -> None:
    out, _ = export(tmp_path, "k8s")
    sts = list(yaml.safe_load_all((out / "cluster.yaml").read_text()))[2]
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    env = {"PATH": f"{fake_python(tmp_path)}:/usr/bin:/bin", "HOSTNAME": hostname}
    ran = subprocess.run(args, env=env, capture_output=True, text=True, timeout=10, check=True)
    assert json.loads(ran.stdout) == ["-m", "raftnode", "--config", layout.CONFIG_PATH, "--node", node,
                                      "--listen-host", "0.0.0.0"]


def test_compose_services_have_what_compose_requires(tmp_path: Path) -> None:
    out, _ = export(tmp_path, "compose")
    document = yaml.safe_load((out / "compose.yaml").read_text())
    services = document["services"]
    assert list(services) == ["alpha", "beta", "gamma"]
    for index, (node, service) in enumerate(services.items()):
        assert service["build"] == "." and service["image"]
        assert service["command"][-4:] == ["--node", node, "--listen-host", "0.0.0.0"]
        assert service["ports"] == [f"127.0.0.1:{7401 + index}:7401"]  # where raftctl on the host looks
        volume, config_mount = service["volumes"]
        assert volume.split(":")[0] in document["volumes"] and volume.endswith(":" + layout.STATE_DIR)
        assert (out / config_mount.split(":")[0]).is_file()
        assert service["secrets"][0]["source"] in document["secrets"]
        assert service["healthcheck"]["test"][0] == "CMD"
    config = parse_config((out / "cluster.toml").read_text(), path=layout.CONFIG_PATH)
    assert [str(n.client) for n in config.nodes] == ["alpha:7401", "beta:7401", "gamma:7401"]
    secrets_file = out / document["secrets"]["raftctl-secrets"]["file"]
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert load_credentials(secrets_file) == load_credentials(secrets_path(tmp_path / "state"))


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, comments and blank lines left out."""
    result = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            result.append((word, rest))
    return result


def test_dockerfile_is_well_formed_and_copies_what_exists(tmp_path: Path) -> None:
    out, _ = export(tmp_path, "compose")
    instructions = dockerfile_instructions((out / "Dockerfile").read_text())
    known = {"FROM", "ENV", "RUN", "COPY", "USER", "VOLUME", "WORKDIR", "ENTRYPOINT", "CMD", "EXPOSE", "ARG", "LABEL"}
    assert instructions[0][0] == "FROM" and "slim" in instructions[0][1]
    assert {word for word, _ in instructions} <= known
    for word, rest in instructions:
        if word in ("ENTRYPOINT", "CMD"):
            assert isinstance(json.loads(rest), list)  # exec form
        if word == "COPY":
            assert (out / rest.split()[0]).exists(), rest
    assert (out / "src" / "raftnode" / "__main__.py").is_file()
    assert (out / "src" / "raftnode" / "probe.py").is_file()
    assert (out / "src" / "raftctl" / "export" / "k8s.py").is_file()


def test_entrypoint_installs_the_secrets_privately_and_drops_root(tmp_path: Path) -> None:
    out, _ = export(tmp_path, "compose")
    mounted = tmp_path / "secrets-as-mounted.toml"
    shutil.copy(out / "secrets.toml", mounted)
    mounted.chmod(0o644)  # as an engine may mount it
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # one `nobody` may run
    with tempfile.TemporaryDirectory() as base:  # pytest's own temp dir is closed to other users
        Path(base).chmod(0o755)
        state = Path(base) / "state"
        target = state / "secrets.toml"
        check = f"import os; open({str(target)!r}).read(); print(os.getuid())"
        env = {**os.environ, "RAFTCTL_SECRETS_MOUNT": str(mounted), "RAFTCTL_STATE_DIR": str(state),
               "RAFTCTL_USER": "nobody"}
        ran = subprocess.run([sys.executable, str(out / "entrypoint.py"), python, "-c", check],
                             env=env, capture_output=True, text=True, timeout=30)
        assert ran.returncode == 0, ran.stderr
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        if os.getuid() == 0:  # root was dropped, and the node's user owns its secrets
            nobody = pwd.getpwnam("nobody").pw_uid
            assert int(ran.stdout) == nobody and target.stat().st_uid == nobody
        else:
            assert load_credentials(target) == load_credentials(secrets_path(tmp_path / "state"))


def test_systemd_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    out, _ = export(tmp_path, "systemd", "--python", sys.executable)
    unit = (out / "raftnode@.service").read_text()
    assert f"ExecStart={sys.executable} -m raftnode --config {layout.CONFIG_PATH} --node %i" in unit
    config = parse_config((out / "cluster.toml").read_text(), path=layout.CONFIG_PATH)
    assert [str(n.peer) for n in config.nodes] == ["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit's syntax is not checked")
    good = subprocess.run([analyze, "verify", "--man=no", str(out / "raftnode@beta.service")],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and not good.stderr.strip(), good.stderr
    # The check can fail: a unit whose program does not exist is refused.
    (tmp_path / "broken@.service").write_text(unit.replace(sys.executable, "/nonexistent/python3"))
    bad = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "broken@beta.service")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "nonexistent" in bad.stderr


def test_export_never_overwrites_without_force(tmp_path: Path) -> None:
    out, _ = export(tmp_path, "k8s")
    (out / "cluster.yaml").write_text("edited by hand\n")
    _, refused = export(tmp_path, "k8s", code=EXIT_USAGE)
    assert "refusing to overwrite" in refused.stderr and "--force" in refused.stderr
    assert (out / "cluster.yaml").read_text() == "edited by hand\n"
    export(tmp_path, "k8s", "--force")
    assert (out / "cluster.yaml").read_text().startswith("---\n")


def test_a_tls_cluster_keeps_its_tls_in_systemd_and_is_refused_for_containers(tmp_path: Path) -> None:
    """A ``[tls]`` table is never dropped in silence (the nodes would talk in plaintext): the
    systemd export names the same certificates by their absolute directory; the container
    exports, which cannot ship them yet, refuse and say why."""
    (tmp_path / "cluster.toml").write_text(CLUSTER + '\n[tls]\ndir = "certs"\n')
    out, _ = export(tmp_path, "systemd", "--python", sys.executable)
    config = parse_config((out / "cluster.toml").read_text(), path=layout.CONFIG_PATH)
    assert config.tls is not None and config.tls.dir == (tmp_path / "certs").resolve()
    for kind in ("compose", "k8s"):
        _, refused = export(tmp_path, kind, code=EXIT_USAGE)
        assert "[tls]" in refused.stderr and "plaintext" in refused.stderr and "export systemd" in refused.stderr
        assert not (tmp_path / f"out-{kind}").exists()
