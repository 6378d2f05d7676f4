"""check_url: only http(s), never internal addresses however they are spelled."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from autoagent.base.errors import CommandError, RefusedError
from autoagent.tools.urlguard import address_problem, check_url


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "ftp://example.com/file",
        "gopher://127.0.0.1:6379/_INFO",
        "data:text/html,<script>alert(1)</script>",
        "javascript:alert(1)",
        "example.com/no-scheme",
        "",
        "http://",
        "http://exa mple.com/",
        "http://example.com/\r\nX-Injected: 1",
        "http://user:secret@example.com/",
        "http://example.com@127.0.0.1/",
        "http://example.com:99999/",
    ],
)
def test_refused_whatever_the_settings(url: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(RefusedError):
            check_url(url, allow_private=allow_private)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.GOOGLE.INTERNAL./",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",  # 169.254.169.254 as one decimal number
        "http://0xa9.0xfe.0xa9.0xfe/",
    ],
)
def test_metadata_refused_even_when_private_allowed(url: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(RefusedError, match="metadata"):
            check_url(url, allow_private=allow_private)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.0.0.1:8080/admin", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as a decimal number
        ("http://0x7f.1/", "loopback"),  # hex and short forms
        ("http://0177.0.0.1/", "loopback"),  # octal
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped IPv6
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 around 127.0.0.1
        ("http://0.0.0.0/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://10.0.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "non-public"),  # carrier-grade NAT
        ("http://240.0.0.1/", "reserved"),
    ],
)
def test_internal_addresses_refused_unless_allowed(url: str, reason: str) -> None:
    with pytest.raises(RefusedError, match=reason):
        check_url(url, allow_private=False)
    assert check_url(url, allow_private=True) == url


def test_public_address_allowed() -> None:
    assert check_url("https://93.184.215.14/path?q=1", allow_private=False) == (
        "https://93.184.215.14/path?q=1"
    )
    assert check_url(" http://[2606:4700::1111]/ ", allow_private=False) == (
        "http://[2606:4700::1111]/"
    )


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port),
            )
            for a in table[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(
        monkeypatch,
        {
            "public.test": ["93.184.215.14"],
            "sneaky.test": ["93.184.215.14", "10.0.0.5"],
            "scoped.test": ["fe80::1%eth0"],
        },
    )
    assert check_url("http://public.test/", allow_private=False) == "http://public.test/"
    with pytest.raises(RefusedError, match=r"sneaky.test resolves to 10.0.0.5, a private"):
        check_url("http://sneaky.test/", allow_private=False)
    with pytest.raises(RefusedError, match="link-local"):
        check_url("http://scoped.test/", allow_private=False)


def test_unresolvable_host_is_a_readable_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {})
    with pytest.raises(CommandError, match=r"Could not resolve host 'nowhere\.test'") as caught:
        check_url("https://nowhere.test/", allow_private=False)
    assert not isinstance(caught.value, RefusedError)


def test_address_problem() -> None:
    assert address_problem(ipaddress.ip_address("8.8.8.8"), allow_private=False) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    assert "metadata" in (
        address_problem(ipaddress.ip_address("169.254.169.254"), allow_private=True) or ""
    )
    assert "loopback" in (
        address_problem(ipaddress.ip_address("64:ff9b::7f00:1"), allow_private=False) or ""
    )
