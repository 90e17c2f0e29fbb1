"""Large values kept out of history rows: stored once, by hash, in the ``blobs`` table.

A value inside an event (a node's output, an attempt's arguments, a run's input or
output, a signal's or an approval's data...) whose canonical JSON is longer than the
store's ``blob_threshold`` (characters; 64 KiB by default) is stored once in the
``blobs`` table, named by the SHA-256 of its text (``sha256:<hex>``), and the event is
stored with a reference in its place. The same value in many events is one row: an
output that becomes the next node's argument, a run's output that is its last node's.

The shape of a stored event with references, e.g. a node's output of 200 KB::

    {"$blobs":[["output"]],"attempt":1,"item":null,"kind":"node_succeeded","node":"a",
     "output":{"$blob":"sha256:9f86…","size":204800}}

``$blobs`` lists the paths of the references (``size``: the blob's bytes, for a reader
of the row). The top-level keys of a stored event are its fields, which keel names (none
starts with ``$``), so no user value can be taken for a reference: a user object with a
``$blob`` key stays data, as only the listed paths are references. Sorted first in
canonical JSON, ``$blobs`` makes a stored event with references start with
``{"$blobs":``: one without is read as before, for the cost of a ``startswith``.

Which values: each field of the event as a whole, except the fields that name values
(``NAMED``: an attempt's ``args``, a wait's ``details``), where each named value is one,
so an argument that is an upstream node's output shares that output's blob; when the
named values left inline are still longer than the threshold together, the longest go
too, until the rest is not. A stored event thus stays near the threshold at most.

The hash chain covers the stored event, references included: the chain stays small
and proves which blob each event names, and a blob's name proves its content
(``verify_blobs``; ``keel verify`` checks both). A reference is only written by the
store, never by an engine: ``Event`` values always carry the whole value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from keel.errors import StoreError
from keel.store.chain import ChainLink, canonical_json

#: the default ``blob_threshold``: values longer than this (characters of canonical
#: JSON) are stored as blobs
BLOB_THRESHOLD = 64 * 1024
#: how every stored event with references begins (and none other can)
MARKER = '{"$blobs":'
#: the prefix of a blob's name, the algorithm of its hash
ALGORITHM = "sha256:"
#: fields whose values are named values, each its own candidate for a blob
NAMED = frozenset({"args", "details"})


def blob_name(text: str) -> str:
    """The name of a blob whose content is ``text``: its SHA-256 over UTF-8."""
    return ALGORITHM + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class BlobRef:
    """One reference in a stored event: where (``path``: field, then name) and which blob."""

    path: tuple[str, ...]
    name: str


def reference(text: str) -> dict[str, Any]:
    """What stands in a stored event for the value whose canonical JSON is ``text``."""
    return {"$blob": blob_name(text), "size": len(text.encode())}


class _Out:
    """The blobs and reference paths of one event as it is made ready to store."""

    def __init__(self) -> None:
        self.blobs: dict[str, str] = {}
        self.paths: list[list[str]] = []

    def keep(self, text: str, ref: dict[str, Any], path: list[str]) -> dict[str, Any]:
        self.blobs[ref["$blob"]] = text
        self.paths.append(path)
        return ref


def stored_payload(
    data: dict[str, Any], payload: str, threshold: int
) -> tuple[str, dict[str, str]]:
    """What to store for an event whose data (``to_data``) is ``data`` and canonical JSON
    ``payload``: the text, with its large values replaced by references, and those values
    by name. An event no longer than ``threshold`` is its ``payload``, read no further
    (the common case costs one ``len``)."""
    if len(payload) <= threshold:
        return payload, {}
    out = _Out()
    stored = dict(data)
    for field, value in data.items():
        if field == "kind":
            continue
        if field in NAMED and isinstance(value, dict):
            stored[field] = _named(value, field, threshold, out)
            continue
        text = canonical_json(value)
        if len(text) > threshold:
            stored[field] = out.keep(text, reference(text), [field])
    if not out.paths:  # long, but no value long enough on its own
        return payload, {}
    stored["$blobs"] = sorted(out.paths)
    return canonical_json(stored), out.blobs


def _named(values: dict[str, Any], field: str, threshold: int, out: _Out) -> dict[str, Any]:
    """A field of named values with the longest stored as blobs: each longer than
    ``threshold``, then more while the rest is longer than it together (and a reference
    is shorter than the value it stands for)."""
    texts = {name: canonical_json(value) for name, value in values.items()}
    left = len(canonical_json(values))
    kept = dict(values)
    for name in sorted(texts, key=lambda n: (-len(texts[n]), n)):
        text = texts[name]
        long = len(text) > threshold
        if not long and left <= threshold:
            break
        ref = reference(text)
        saved = len(text) - len(canonical_json(ref))
        if not long and saved <= 0:
            break  # this one and the shorter ones after it would only grow the rest
        kept[name] = out.keep(text, ref, [field, name])
        left -= saved
    return kept


def has_blobs(payload: str) -> bool:
    """Whether a stored event holds references (its text starts with ``MARKER``)."""
    return payload.startswith(MARKER)


def references(data: Mapping[str, Any]) -> list[BlobRef]:
    """The references of a stored event's data; ``ValueError`` if one is not one."""
    paths = data.get("$blobs")
    if not isinstance(paths, list):
        raise ValueError("its $blobs is not a list of paths")
    refs: list[BlobRef] = []
    for path in paths:
        if not (isinstance(path, list) and path and all(isinstance(p, str) for p in path)):
            raise ValueError(f"its $blobs lists {path!r}, not a path")
        ref = _at(data, path)
        name = ref.get("$blob") if isinstance(ref, dict) else None
        if not (isinstance(name, str) and name.startswith(ALGORITHM)):
            raise ValueError(f"its {'.'.join(path)} is not a blob reference")
        refs.append(BlobRef(tuple(path), name))
    return refs


def _at(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def names_in(payloads: Iterable[str]) -> set[str]:
    """The blobs named by these stored events (those unreadable name none here)."""
    names: set[str] = set()
    # one unreadable is reported by ``verify_blobs``, and a read of it fails in ``filled``
    for payload in [p for p in payloads if p.startswith(MARKER)]:  # has_blobs, for every row
        with suppress(ValueError):
            names.update(ref.name for ref in references(json.loads(payload)))
    return names


def filled(data: dict[str, Any], contents: Mapping[str, str], where: str) -> dict[str, Any]:
    """A stored event's data with its references replaced by their values (from
    ``contents``, blob texts by name): the event as it was appended. ``where`` names
    the event in the error of a missing blob."""
    try:
        refs = references(data)
    except ValueError as exc:
        raise StoreError(f"{where}: {exc} (see keel verify)") from None
    whole = dict(data)
    del whole["$blobs"]
    for ref in refs:
        text = contents.get(ref.name)
        if text is None:
            raise StoreError(
                f"{where}: blob {ref.name} ({'.'.join(ref.path)}) is missing (see keel verify)"
            )
        whole = _put(whole, ref.path, json.loads(text))
    return whole


def _put(data: dict[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    """``data`` with ``value`` at ``path``, copied along it (an event's own dicts are
    never changed)."""
    key, *rest = path
    return {**data, key: _put(data[key], rest, value) if rest else value}


def verify_blobs(links: Sequence[ChainLink], contents: Mapping[str, str]) -> list[str]:
    """What is wrong with the blobs these stored events name, given what the store holds
    of them (``Store.blobs``): each missing or altered blob, naming its event and path.
    ``verify_chain`` proves the events name these blobs; this proves the blobs hold what
    was named."""
    problems: list[str] = []
    for link in links:
        if not has_blobs(link.payload):
            continue
        try:
            refs = references(json.loads(link.payload))
        except ValueError as exc:
            problems.append(f"event {link.seq}: {exc}")
            continue
        for ref in refs:
            text = contents.get(ref.name)
            what = f"event {link.seq}: blob {ref.name} ({'.'.join(ref.path)})"
            if text is None:
                problems.append(f"{what} is missing")
            elif blob_name(text) != ref.name:
                problems.append(f"{what} does not match its hash (it was altered)")
    return problems


def column_value(text: str, threshold: int) -> tuple[str, dict[str, str]]:
    """What a run's ``input`` or ``output`` column stores for the canonical JSON
    ``text``: itself, or past ``threshold`` the blob's name (which no JSON text can be:
    none starts with ``s``) and the blob."""
    if len(text) <= threshold:
        return text, {}
    name = blob_name(text)
    return name, {name: text}


def column_name(text: str | None) -> str | None:
    """The blob a run's ``input`` or ``output`` column names, if it names one."""
    return text if text is not None and text.startswith(ALGORITHM) else None


def column_data(text: str, contents: Mapping[str, str], where: str) -> Any:
    """A run's ``input`` or ``output`` column read back as the value it stores."""
    name = column_name(text)
    if name is None:
        return json.loads(text)
    found = contents.get(name)
    if found is None:
        raise StoreError(f"{where}: blob {name} is missing (see keel verify)")
    return json.loads(found)
