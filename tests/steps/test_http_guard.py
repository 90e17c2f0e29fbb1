"""The ``http`` step's address guard and its ``[http]`` settings, without a network:
which addresses are public, what ``allow`` lets through, and that a wrong setting is
refused naming the file and the key."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from keel.steps.http_config import HttpConfig, HttpConfigError, http_config, parse_http_table
from keel.steps.http_guard import allowed, refusal

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "::1": "loopback",
    "10.0.0.1": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "100.64.0.1": "CGNAT",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "192.0.2.10": "private",  # documentation (TEST-NET-1)
    "198.18.0.1": "private",  # benchmarking
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::ffff:169.254.169.254": "link-local",
    "2002:7f00:1::": "loopback",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::": "link-local",  # 6to4 of 169.254.169.254
    "64:ff9b::a00:1": "private",  # NAT64 of 10.0.0.1
    "::127.0.0.1": "reserved",  # IPv4-compatible (deprecated)
}


@pytest.mark.parametrize(("address", "why"), sorted(REFUSED.items()))
def test_an_address_that_is_not_public_is_refused_saying_why(address: str, why: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None
    assert why in found


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111",
                                     "2002:5db8:d822::"])  # fmt: skip
def test_a_public_address_passes(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_allow_takes_addresses_networks_and_host_names() -> None:
    config = parse_http_table("keel.toml (t)", {"allow": [
        "127.0.0.1", "10.0.0.0/8", "::1", "Internal.Example.com.", "*.corp.example", "[fd00::1]"
    ]})  # fmt: skip
    ip = ipaddress.ip_address
    assert allowed("x", ip("127.0.0.1"), config)
    assert allowed("x", ip("::ffff:127.0.0.1"), config)  # the IPv4-mapped form of it
    assert not allowed("x", ip("127.0.0.2"), config)
    assert allowed("x", ip("10.200.3.4"), config)
    assert not allowed("x", ip("11.0.0.1"), config)
    assert allowed("x", ip("::1"), config)
    assert allowed("x", ip("fd00::1"), config)
    assert allowed("internal.example.com", ip("192.168.9.9"), config)
    assert allowed("INTERNAL.example.com.", ip("192.168.9.9"), config)
    assert allowed("db.corp.example", ip("192.168.9.9"), config)
    assert not allowed("corp.example", ip("192.168.9.9"), config)
    assert not allowed("evilcorp.example", ip("192.168.9.9"), config)
    assert not allowed("other.example.com", ip("192.168.9.9"), config)


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ({"alow": ["127.0.0.1"]}, "unknown key 'alow'"),
        ({"allow": "127.0.0.1"}, "http.allow must be a list"),
        ({"allow": ["not a host!"]}, "'not a host!' is not an address"),
        ({"allow": ["10.0.0.0/33"]}, "'10.0.0.0/33' is not an address"),
        ({"allow": [7]}, "got 7"),
        ({"max_response_bytes": 0}, "http.max_response_bytes must be"),
        ({"max_response_bytes": "big"}, "http.max_response_bytes must be"),
    ],
)
def test_a_wrong_setting_is_refused_naming_the_file_and_the_key(
    table: dict[str, object], said: str
) -> None:
    with pytest.raises(HttpConfigError) as caught:
        parse_http_table("keel.toml (/srv/keel.toml)", table)
    assert said in str(caught.value)
    assert "keel.toml (/srv/keel.toml)" in str(caught.value)


def test_the_settings_come_from_the_worker_folder_keel_toml(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text(
        '[http]\nallow = ["10.1.0.0/16"]\nmax_response_bytes = 99\n'
    )
    config = http_config(tmp_path)
    assert config.networks == (ipaddress.ip_network("10.1.0.0/16"),)
    assert config.max_response_bytes == 99
    assert config.source is not None
    assert str(tmp_path / "keel.toml") in config.source
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "keel.toml").write_text("")
    assert http_config(bare) == HttpConfig(
        source=f"keel.toml ({bare / 'keel.toml'}), which has no [http] table"
    )
