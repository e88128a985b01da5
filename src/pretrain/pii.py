"""Personal data: e-mail and IP addresses replaced by placeholders (a modifier).

As in BigCode's StarCoder pipeline (Li et al. 2023, section 4: e-mails and IP addresses
replaced by placeholder tokens) and Dolma's: the text around them is kept. Candidates are found
by regular expression; an IP address must also parse with the ``ipaddress`` module, and
addresses that identify no one (private, loopback, link-local, reserved and documentation
ranges: 127.0.0.1, 10.0.0.0/8, 192.0.2.0/24, ::1, ...) are left unless ``keep_non_public_ips``
is off.
"""

from __future__ import annotations

import ipaddress
import re

from pretrain.config import PiiConfig

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"       # local part
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"  # domain labels
    r"[A-Za-z]{2,}(?![\w-])")                           # top-level domain
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?!\w)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
MIN_IPV6_GROUPS = 3
"""An IPv6 candidate needs this many written groups, so that slices like a[::2] are not one."""


class PiiPlaceholders:
    """Replace e-mail addresses and public IP addresses by placeholders."""

    name = "pii"

    def __init__(self, cfg: PiiConfig):
        self.cfg = cfg

    def modify(self, text: str) -> str:
        if self.cfg.email_placeholder is not None and "@" in text:
            text = EMAIL.sub(self.cfg.email_placeholder, text)
        if self.cfg.ip_placeholder is not None:
            if "." in text:
                text = IPV4.sub(self._ip, text)
            if "::" in text or text.count(":") >= 7:
                text = IPV6.sub(self._ip, text)
        return text

    def _ip(self, match: re.Match) -> str:
        found = match.group(0)
        if ":" in found and sum(1 for group in found.split(":") if group) < MIN_IPV6_GROUPS:
            return found
        try:
            address = ipaddress.ip_address(found)
        except ValueError:
            return found
        if self.cfg.keep_non_public_ips and not address.is_global:
            return found
        return self.cfg.ip_placeholder
