"""A database URL as it may be shown: in a banner, a log line or an error message.

A URL often carries a password (``postgresql://user:secret@host/db``, or
``?password=secret``); terminals, logs and CI output are read by more people than the
database is. Every place that shows a URL shows ``masked_url(url)``.
"""

from __future__ import annotations

import re

MASK = "***"
_PASSWORD_OPTION = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``postgresql://user:***@host/db``);
    everything else exactly as given, so the user recognises the URL they wrote."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url  # a file path
    end = min((rest.find(c) for c in "?#" if c in rest), default=len(rest))
    head, after = rest[:end], rest[end:]
    if "@" in head:  # the last @ ends the user part: a password may hold '/' or '@'
        userinfo, _, host = head.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        if colon:
            head = f"{user}:{MASK}@{host}"
    after = _PASSWORD_OPTION.sub(rf"\g<1>{MASK}", after)
    return f"{scheme}://{head}{after}"
