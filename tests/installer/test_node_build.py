"""`firelane node build`: the bundle's two sets, its manifest, and its checks."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from gateway import cli
from installer import bundle
from installer.errors import InstallError
from protocol import registers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> bundle.Bundle:
    return bundle.build(tmp_path_factory.mktemp("build"))


def test_the_bundle_is_versioned_and_its_manifest_names_what_it_needs(
    built: bundle.Bundle,
) -> None:
    major, minor, patch = bundle.firmware_version()
    assert built.dir.name == f"firelane-node-{major}.{minor}.{patch}"
    m = json.loads((built.dir / "manifest.json").read_text())
    assert m["firmware_version"] == f"{major}.{minor}.{patch}"
    assert m["map_version"] == registers.MAP_VERSION
    assert "mpy v6.3" in m["mpy_cross"] and m["march"] == "xtensawin"
    assert m["micropython"] == {
        "min_version": "1.24",
        "tested_version": "1.29.0",
        "mpy_version": "6.3",
    }


def test_both_sets_hold_the_same_modules_with_the_scripts_last(built: bundle.Bundle) -> None:
    mpy = [f.path for f in built.files("mpy")]
    py = [f.path for f in built.files("py")]
    assert [p.rsplit(".", 1)[0] for p in mpy] == [p.rsplit(".", 1)[0] for p in py]
    assert mpy[-2:] == py[-2:] == ["boot.py", "main.py"]  # run by name, copied last
    assert all(p.endswith(".mpy") for p in mpy[:-2])
    assert "protocol/rtu.mpy" in mpy and "protocol/__init__.mpy" in mpy
    assert not {"protocol/names.mpy", "protocol/master.mpy"} & set(mpy)  # gateway only


def test_every_file_matches_its_size_and_hash(built: bundle.Bundle) -> None:
    for kind in bundle.SETS:
        for f in built.files(kind):
            data = (built.dir / kind / f.path).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256)
    assert built.data("mpy", "app.mpy")[:2] == b"M\x06"  # .mpy v6
    assert built.data("py", "app.py") == (ROOT / "firmware" / "app.py").read_bytes()


def test_every_protocol_module_the_firmware_imports_is_in_the_bundle(
    built: bundle.Bundle,
) -> None:
    wanted = set()
    for source in (ROOT / "firmware").glob("*.py"):
        text = source.read_text()
        wanted |= set(re.findall(r"^\s*from protocol\.(\w+) import", text, re.M))
        wanted |= set(re.findall(r"^\s*from protocol import (\w+)", text, re.M))
    paths = {f.path for f in built.files("mpy")}
    assert wanted and {f"protocol/{m}.mpy" for m in wanted} <= paths


def test_load_refuses_a_changed_file_and_a_missing_manifest(
    built: bundle.Bundle, tmp_path: Path
) -> None:
    assert bundle.load(built.dir).version == built.version
    with pytest.raises(InstallError, match=r"has no manifest\.json"):
        bundle.load(tmp_path)
    copy = tmp_path / built.dir.name
    import shutil

    shutil.copytree(built.dir, copy)
    (copy / "mpy" / "app.mpy").write_bytes(b"M\x06 tampered")
    with pytest.raises(InstallError, match=r"mpy/app\.mpy does not match the manifest") as exc:
        bundle.load(copy)
    assert "firelane node build" in exc.value.hint


def test_the_build_command_prints_the_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["node", "build", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"built {tmp_path}/firelane-node-" in out and "register map v1" in out
    assert (tmp_path / f"firelane-node-{'.'.join(map(str, bundle.firmware_version()))}").is_dir()
    assert not list(tmp_path.glob(".*partial"))
