"""The dashboard's vendored libraries (``keel/server/dashboard/static/vendor/``) are
what ``deploy/vendor_assets.py`` pins: its README, which names each file's version and
sha256, is what the script makes of the files on disk, so a file changed by hand, a
version edited without ``--write``, or a file left out fails here (offline; the script
itself checks the files against npm)."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).parents[2] / "deploy" / "vendor_assets.py"


def script() -> dict[str, Any]:
    return runpy.run_path(str(SCRIPT))


def test_every_pinned_file_and_its_licence_is_vendored() -> None:
    vendored = script()
    names = {name for asset in vendored["ASSETS"] for name in asset.vendored().values()}
    assert {"htmx.min.js", "sse.js", "cytoscape.min.js", "uPlot.iife.min.js",
            "uPlot.min.css"} <= names  # fmt: skip
    assert sum(name.endswith(".LICENSE.txt") for name in names) == len(vendored["ASSETS"])
    assert set(vendored["on_disk"]()) == names


def test_readme_lists_the_versions_and_hashes_of_the_files_on_disk() -> None:
    vendored = script()
    folder: Path = vendored["VENDOR"]
    expected = vendored["readme"](vendored["on_disk"]())
    assert (folder / "README.md").read_text(encoding="utf-8") == expected
    for asset in vendored["ASSETS"]:
        assert f"## {asset.package} {asset.version}" in expected
        assert asset.tarball in expected


def test_check_names_a_file_that_differs_from_npm(tmp_path: Path) -> None:
    """``check`` is what the script runs against npm's files: fed the vendored files as
    'npm's', it passes the folder as it is and names one edited by hand."""
    vendored = script()
    folder: Path = vendored["VENDOR"]
    shutil.copytree(folder, tmp_path / "vendor")
    files = vendored["on_disk"]()
    assert vendored["check"](files, tmp_path / "vendor") == []
    (tmp_path / "vendor" / "sse.js").write_bytes(b"// changed by hand\n")
    wrong = vendored["check"](files, tmp_path / "vendor")
    assert len(wrong) == 1
    assert wrong[0].startswith("sse.js: vendored ")
