"""SSRF protection: checked at delivery time, after DNS, and the connection pinned."""

import ipaddress
import socket

import pytest

from webhooks.delivery import RETRYING, SUCCEEDED, attempt
from webhooks.models import DeliveryAttempt
from webhooks.ssrf import TargetRefused, address_is_public, target_check, url_check


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resolving_to(monkeypatch, *addresses: str) -> None:
    """Makes every host name resolve to `addresses` (no DNS in tests)."""

    def getaddrinfo(host, port, *args, **kwargs):
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space (CGNAT)
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "fec0::1",  # IPv6 site-local
        "192.0.0.8",  # IPv4 service continuity prefix
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert address_is_public(ipaddress.ip_address(address))


def test_live_targets_must_use_https(settings, monkeypatch):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    resolving_to(monkeypatch, "93.184.215.14")
    with pytest.raises(TargetRefused) as refused:
        target_check("http://hooks.example.com/in", environment="live")
    assert refused.value.code == "webhook_url_https"

    target = target_check("https://hooks.example.com/in?x=1", environment="live")
    assert (target.address, target.port, target.path) == ("93.184.215.14", 443, "/in?x=1")
    assert target_check("http://hooks.example.com/", environment="test").port == 80


@pytest.mark.parametrize("environment", ["live", "test"])
def test_names_resolving_to_private_addresses_are_refused(settings, monkeypatch, environment):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    # One private address among public ones is enough to refuse.
    resolving_to(monkeypatch, "93.184.215.14", "10.0.0.5")
    with pytest.raises(TargetRefused) as refused:
        target_check("https://rebind.example.com/", environment=environment)
    assert refused.value.code == "webhook_target_private"


def test_private_targets_are_allowed_in_every_mode_when_the_setting_says_so(settings, monkeypatch):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    resolving_to(monkeypatch, "127.0.0.1")
    for environment in ("live", "test"):
        assert target_check("http://localhost:8080/", environment=environment).address == (
            "127.0.0.1"
        )
    # Public targets in live still need https.
    resolving_to(monkeypatch, "93.184.215.14")
    with pytest.raises(TargetRefused):
        target_check("http://hooks.example.com/", environment="live")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://hooks.example.com/", "webhook_url_scheme"),
        ("https:///nohost", "webhook_url_invalid"),
        ("https://user:pw@hooks.example.com/", "webhook_url_invalid"),
        ("https://hooks.example.com:99999/", "webhook_url_invalid"),
        ("https://127.0.0.1/", "webhook_target_private"),
        ("http://hooks.example.com/", "webhook_url_https"),
    ],
)
def test_url_check_refuses_without_dns(settings, url, code):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(TargetRefused) as refused:
        url_check(url, environment="live")
    assert refused.value.code == code


def test_url_check_passes_a_public_https_url(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    url_check("https://hooks.example.com/in", environment="live")


@pytest.mark.django_db
def test_a_live_delivery_to_a_private_target_is_refused_at_delivery_time(
    settings, endpoint, receiver, emit_ping
):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    [delivery] = emit_ping()

    assert attempt(delivery.pk) == RETRYING
    assert receiver.received == []
    logged = DeliveryAttempt.objects.get()
    assert logged.error.startswith("webhook_target_private")
    assert logged.status_code is None


@pytest.mark.django_db
def test_the_connection_goes_to_the_checked_address(
    monkeypatch, make_endpoint, receiver, emit_ping
):
    """The name is resolved once, checked, and that address is connected to (no second
    lookup a rebinding DNS server could answer differently); Host keeps the name."""
    endpoint = make_endpoint(f"http://hooks.example.test:{receiver.port}/hooks")
    receiver.secrets.append(endpoint.secret)
    resolving_to(monkeypatch, "127.0.0.1")
    [delivery] = emit_ping()

    assert attempt(delivery.pk) == SUCCEEDED
    [received] = receiver.received
    assert received.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert received.verified[endpoint.secret]


def _self_signed(tmp_path, host: str):
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.django_db
def test_https_targets_verify_the_certificate_against_the_host_name(
    tmp_path, monkeypatch, make_endpoint, receiver, emit_ping
):
    """TLS to the pinned address still sends the host name (SNI) and checks the server's
    certificate: an untrusted one fails the attempt, nothing is sent over it."""
    import ssl

    cert_path, key_path = _self_signed(tmp_path, "hooks.example.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    make_endpoint(f"https://hooks.example.test:{receiver.port}/hooks")
    resolving_to(monkeypatch, "127.0.0.1")
    [delivery] = emit_ping()

    assert attempt(delivery.pk) == RETRYING
    error = DeliveryAttempt.objects.get().error
    assert error.startswith("tls_error") and "CERTIFICATE_VERIFY_FAILED" in error
    assert receiver.received == []
