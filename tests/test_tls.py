"""The cluster's certificates (raftnode.security.pki), the [tls] table (raftnode.config) and the checks of
the files when a context is made (raftnode.security.tls): each problem named with the file and key."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from raftctl.clusterfile import default_config_text
from raftnode.config import ConfigError, load_config, parse_config
from raftnode.security import pki, tls

NODES = """
[[nodes]]
id = "n1"
peer = "127.0.0.1:7101"
client = "127.0.0.1:7201"

[[nodes]]
id = "n2"
peer = "db2.example:7102"
client = "127.0.0.2:7202"
"""


def cluster(tmp_path: Path, table: str = "[tls]\n") -> object:
    path = tmp_path / "cluster.toml"
    path.write_text(table + NODES)
    return load_config(path)


@pytest.fixture
def made(tmp_path: Path):  # noqa: ANN201
    config = cluster(tmp_path)
    pki.make_cluster_pki(config)
    return config


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# -- the [tls] table -------------------------------------------------------------------------------


def test_the_tls_table_defaults_to_the_state_dir_and_takes_a_dir_relative_to_the_file(tmp_path: Path) -> None:
    assert cluster(tmp_path, "").tls is None  # type: ignore[attr-defined]
    assert cluster(tmp_path).tls.dir == tmp_path / ".raftctl" / "tls"  # type: ignore[attr-defined]
    assert cluster(tmp_path, '[tls]\ndir = "certs"\n').tls.dir == tmp_path / "certs"  # type: ignore[attr-defined]
    assert cluster(tmp_path, "[tls]\nenabled = false\n").tls is None  # type: ignore[attr-defined]
    text = default_config_text(3, 7100, tls=True)
    assert parse_config(text, path=tmp_path / "c.toml").tls is not None
    assert parse_config(default_config_text(3, 7100), path=tmp_path / "c.toml").tls is None


@pytest.mark.parametrize(("table", "key", "reason"), [
    ('[tls]\ncert = "x"\n', "tls.cert", "unknown key (valid keys: enabled, dir)"),
    ("[tls]\nenabled = 1\n", "tls.enabled", "expected a boolean, got integer 1"),
    ('[tls]\ndir = ""\n', "tls.dir", "must not be empty"),
    ("[tls]\ndir = 3\n", "tls.dir", "expected a string, got integer 3"),
    ('tls = "on"\n', "tls", "expected a table ([tls]), got string"),
])
def test_a_bad_tls_table_is_refused_naming_the_key(tmp_path: Path, table: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cluster(tmp_path, table)
    assert caught.value.key == key and reason in caught.value.reason


# -- the certificates ------------------------------------------------------------------------------


def test_init_makes_a_ca_and_a_certificate_per_node_and_for_clients_keys_mode_0600(made) -> None:  # noqa: ANN001
    files = made.tls
    for key in (files.ca_key, files.node_key("n1"), files.node_key("n2"), files.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    ca = certificate(files.ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name, path in (("n1", files.node_cert("n1")), ("n2", files.node_cert("n2")), ("raftctl", files.client_cert)):
        cert = certificate(path)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        cert.verify_directly_issued_by(ca)
    n2 = certificate(files.node_cert("n2")).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert n2.get_values_for_type(x509.DNSName) == ["db2.example", "localhost"]
    assert n2.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")]


def test_a_second_run_keeps_what_exists_and_issues_only_what_is_missing(made) -> None:  # noqa: ANN001
    before = made.tls.node_cert("n1").read_bytes()
    made.tls.node_cert("n2").unlink()
    made.tls.node_key("n2").unlink()
    assert pki.make_cluster_pki(made) == [made.tls.node_key("n2"), made.tls.node_cert("n2")]
    assert made.tls.node_cert("n1").read_bytes() == before
    tls.check_certificates(made, "n2")


def test_contexts_load_for_a_node_and_for_clients(made) -> None:  # noqa: ANN001
    node = tls.node_tls(made, "n1")
    assert node is not None and node.server.verify_mode == tls.ssl.CERT_REQUIRED
    assert tls.client_context(made).check_hostname


# -- problems with the files, each named ------------------------------------------------------------


def expect(config, node_id: str | None, *fragments: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as caught:
        tls.node_tls(config, node_id) if node_id else tls.client_context(config)
    assert caught.value.key == "tls.dir"
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_a_missing_file_is_named(made) -> None:  # noqa: ANN001
    made.tls.node_cert("n1").unlink()
    expect(made, "n1", "node-n1.crt: file not found (`raftctl init --tls` makes it)")
    made.tls.ca.unlink()
    expect(made, None, "ca.crt: file not found")


def test_an_unreadable_file_or_a_key_open_to_others_is_named(made) -> None:  # noqa: ANN001
    made.tls.client_cert.unlink()
    made.tls.client_cert.mkdir()
    expect(made, None, "client.crt: is a directory")
    made.tls.node_key("n1").chmod(0o644)
    expect(made, "n1", "node-n1.key: the private key is accessible to other users (mode 644)", "chmod 600")


def test_a_bad_certificate_or_a_key_of_another_certificate_is_named(made) -> None:  # noqa: ANN001
    made.tls.node_key("n1").unlink()
    made.tls.node_key("n2").rename(made.tls.node_key("n1"))
    expect(made, "n1", "node-n1.crt: the key does not match the certificate")
    made.tls.node_cert("n2").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    expect(made, "n2", "node-n2.crt: not a PEM certificate")
    made.tls.ca.write_text("not a certificate")
    expect(made, None, "ca.crt: not a PEM certificate (the cluster CA)")


def sign(made, *, days: tuple[int, int], ca_key: ec.EllipticCurvePrivateKey | None = None) -> None:  # noqa: ANN001
    """Replace n1's certificate by one valid from ``days[0]`` to ``days[1]`` days from now."""
    key = serialization.load_pem_private_key(made.tls.node_key("n1").read_bytes(), password=None)
    signer = ca_key or serialization.load_pem_private_key(made.tls.ca_key.read_bytes(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n1")]))
        .issuer_name(certificate(made.tls.ca).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .sign(signer, hashes.SHA256())
    )
    made.tls.node_cert("n1").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_an_expired_not_yet_valid_or_foreign_certificate_is_named(made) -> None:  # noqa: ANN001
    sign(made, days=(-30, -1))
    expect(made, "n1", "node-n1.crt: the certificate expired on")
    sign(made, days=(2, 30))
    expect(made, "n1", "node-n1.crt: the certificate is not valid before")
    sign(made, days=(-1, 30), ca_key=ec.generate_private_key(ec.SECP256R1()))
    expect(made, "n1", "node-n1.crt: the certificate is not signed by the cluster CA")
    sign(made, days=(-1, 30))
    tls.node_tls(made, "n1")
