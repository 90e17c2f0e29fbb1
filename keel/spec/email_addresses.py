"""One email address, checked: ``ann@example.com`` or ``Ann Lee <ann@example.com>``.

An ``email`` step's addresses come from templates, so from data a run was given: a
value that is not exactly one address is refused, not sent. A line break (which would
start another header: ``Bcc: someone``) is refused first; then the text must parse as
one mailbox (``email.utils.getaddresses``) whose address part is a valid ASCII
``local@domain`` (``email.headerregistry.Address``).
"""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import getaddresses

_BREAKS = ("\r", "\n", "\0")


def has_line_break(text: str) -> bool:
    """Whether ``text`` holds a character that would end a header line."""
    return any(char in text for char in _BREAKS)


def parse_address(text: str) -> Address:
    """The address ``text`` gives, or ``ValueError`` saying what is wrong with it."""
    if has_line_break(text):
        raise ValueError(f"{text!r} holds a line break: an address is one line")
    pairs = getaddresses([text])
    if len(pairs) != 1 or not pairs[0][1]:
        raise ValueError(
            f"{text!r} is not one email address: write 'name@example.com' or "
            "'Name <name@example.com>' (a list of addresses gives several)"
        )
    name, spec = pairs[0]
    try:
        address = Address(display_name=name, addr_spec=spec)
    except (ValueError, IndexError, HeaderParseError):
        address = None
    if address is None or not address.username or not address.domain or not spec.isascii():
        raise ValueError(f"{text!r} is not a valid email address: write 'name@example.com'")
    return address
