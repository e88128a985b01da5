"""PII placeholders: what looks like an address but is a version, a section number, an ssh
remote or an example stays; real addresses are still replaced (tests/clean/test_normalize.py has the
basic cases)."""

import pytest

from pretrain.clean.pii import PiiPlaceholders, is_version_context
from pretrain.config.clean import PiiConfig

PII = PiiPlaceholders(PiiConfig())
ALL = PiiPlaceholders(PiiConfig(keep_non_public_ips=False))


@pytest.mark.parametrize("text", [
    "setuptools 40.8.0.1",
    "numpy==1.21.0.2",
    "pip install 'ninja>=1.11.1.1'",
    "Build 1.84.1.0",
    "section 8.2.4.44",
    'the HTML5 specs sections "8.2.4.44 Bogus comment state"',
    "https://tools.ietf.org/html/rfc7231#section-7.1.1.1",
    "Versions after 1.11.1.1 no longer support Python 2",
    "firefox-91.0.2.1.tar.gz",
    "§ 8.2.4.44",
    "'1.0.0.127.in-addr.arpa'",
    # changelog wording: a preposition after a version word or after a version is no network
    # word, and a product name may be capitalised or upper-case
    "Upgrade to 40.8.0.1",
    "bumped setuptools from 40.8.0.1 to 41.0.0.1",
    "Bumps [setuptools](https://github.com/pypa/setuptools) from 40.8.0.1 to 41.0.0.1.",
    "Update Pillow to 9.10.2.1 (changelog)",
    "tested with Pillow 9.10.2.1",
    "SETUPTOOLS 40.8.0.1",
    "a package-like name (`setuptools 40.8.0.1`) or 'Pillow 9.10.2.1'",
])
def test_versions_and_section_numbers_stay(text):
    assert PII.modify(text) == ALL.modify(text) == text


@pytest.mark.parametrize("text, expected", [
    ("connect to 8.8.8.8", "connect to <IP_ADDRESS>"),
    ("server at 52.14.3.9", "server at <IP_ADDRESS>"),
    ("host 52.14.3.9:8080", "host <IP_ADDRESS>:8080"),
    ("52.14.3.9 - - [10/Oct/2000:13:55:36 -0700] GET /", "<IP_ADDRESS> - - [10/Oct/2000:13:55:36 -0700] GET /"),
    ("address = 52.14.3.9", "address = <IP_ADDRESS>"),
    ("My IP is 52.14.3.9.", "My IP is <IP_ADDRESS>."),
    ("ssh root@52.14.3.9", "ssh root@<IP_ADDRESS>"),
    ("http://52.14.3.9/index.html", "http://<IP_ADDRESS>/index.html"),
    ("raddr=addr(ip='93.186.135.91', port=80)", "raddr=addr(ip='<IP_ADDRESS>', port=80)"),
    # a network word nearer than the version word, or a port, makes it an address
    ("version 2 of the server at 52.14.3.9", "version 2 of the server at <IP_ADDRESS>"),
    ("release 52.14.3.9:443", "release <IP_ADDRESS>:443"),
    # a preposition not after a version word or a version is a network word
    ("from 52.14.3.9 port 22", "from <IP_ADDRESS> port 22"),
    ("redirect to 52.14.3.9", "redirect to <IP_ADDRESS>"),
    ("traffic from 52.14.3.9 to 8.8.8.8", "traffic from <IP_ADDRESS> to <IP_ADDRESS>"),
    ("upgrade the server to 52.14.3.9", "upgrade the server to <IP_ADDRESS>"),
    ("Upgrade docs hosted at 52.14.3.9", "Upgrade docs hosted at <IP_ADDRESS>"),
    ("tunnel via 52.14.3.9", "tunnel via <IP_ADDRESS>"),
    ("Server: 52.14.3.9", "Server: <IP_ADDRESS>"),
])
def test_real_addresses_are_still_replaced(text, expected):
    assert PII.modify(text) == expected


def test_documentation_and_multicast_ranges_stay_unless_asked():
    text = "host 203.0.113.5:8080, group 224.0.0.0/4, mask ffff:ffff:ffff:ffff::"
    assert PII.modify(text) == text
    assert ALL.modify(text) == "host <IP_ADDRESS>:8080, group <IP_ADDRESS>/4, mask <IP_ADDRESS>"


@pytest.mark.parametrize("text, expected", [
    ("git clone git@github.com:python-distro/distro", "git clone git@github.com:python-distro/distro"),
    ('(eg. "Joe Blow <joe@example.com>") or foo@example.org, me@host.test', None),
    ("pin pkg@1.2.3 or python@2.7", None),
    ("Contact: ana.lopez@gmail.com: any time", "Contact: <EMAIL>: any time"),
    ("mail barry@python.org or jane@mail.example.co.uk", "mail <EMAIL> or <EMAIL>"),
])
def test_ssh_remotes_and_example_addresses_stay_real_addresses_go(text, expected):
    assert PII.modify(text) == (text if expected is None else expected)


def test_version_context_reads_the_words_before_and_the_port_after():
    def quad(text):
        start = text.index("1.2.3.4")
        return is_version_context(text, start, start + 7)

    assert quad("version 1.2.3.4") and quad("foo==1.2.3.4") and quad("mylib 1.2.3.4")
    assert quad("Mylib 1.2.3.4") and quad("MYLIB 1.2.3.4") and quad("bump mylib to 1.2.3.4")
    assert quad("from 1.2.3 to 1.2.3.4")  # a version before the preposition: a range of versions
    assert not quad("is 1.2.3.4") and not quad("host 1.2.3.4") and not quad("mylib 1.2.3.4:80")
    assert not quad("Is 1.2.3.4") and not quad("HOST 1.2.3.4") and not quad("mylib to 1.2.3.4")
