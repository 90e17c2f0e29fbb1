"""The dashboard's own script and style, and the vendored libraries (``static/``), served
from a list made when the server starts: a path not in it is a 404 without touching the
file system, so nothing outside the folder can be asked for.

URLs carry the file's content hash (``?v=``), so a file is cached for a year and a new
version is a new URL. These are public (the sign-in page needs them); they hold no data.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8",
          ".md": "text/plain; charset=utf-8"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str


@cache
def assets() -> dict[str, Asset]:
    """Every file under ``static/`` by its path there (read once)."""
    root = resources.files("keel.server.dashboard") / "static"
    found: dict[str, Asset] = {}

    def walk(folder: object, prefix: str) -> None:
        for entry in folder.iterdir():  # type: ignore[attr-defined]
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, f"{name}/")
            elif not entry.name.startswith("."):
                body = entry.read_bytes()
                suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
                media = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
                found[name] = Asset(body, media or "application/octet-stream",
                                    hashlib.sha256(body).hexdigest()[:12])  # fmt: skip

    walk(root, "")
    return found


def asset_url(path: str) -> str:
    """The URL of ``static/<path>`` with its content hash; a missing asset is a bug here."""
    return f"/ui/static/{path}?v={assets()[path].version}"


@router.get("/ui/static/{path:path}")
def static(path: str) -> Response:
    found = assets().get(path)
    if found is None:
        raise HTTPException(404, f"no such file: {path}")
    return Response(found.body, media_type=found.media_type, headers={
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    })  # fmt: skip
