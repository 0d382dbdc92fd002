"""End-to-end wheelhouse build against a local fake index (real pip, no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from harness.wheelhouse.build import build
from harness.wheelhouse.config import MIB, WheelhouseConfig
from harness.wheelhouse.errors import WheelhouseError
from harness.wheelhouse.verify import verify_wheelhouse
from harness.wheelhouse.wheelfile import verify_wheel
from tests.harness.wheelhouse.fake_index import (
    IMAGE_TEXT,
    SGLANG_VERSION,
    build_index,
    fake_profile,
    make_wheel,
)

LIMIT = int(1.5 * MIB)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("wheelhouse")
    index = root / "index"
    build_index(index)
    image = root / "image.txt"
    image.write_text(IMAGE_TEXT)
    config = WheelhouseConfig(sglang_version=SGLANG_VERSION, python_version="3.12", image=image, arch="sm90",
                              out=root / "out", batch_limit_bytes=LIMIT, find_links=(str(index),),
                              no_index=True, extra_requirements=("matplotlib-fake",))
    manifest = build(config, fake_profile())
    return root / "out", manifest, index


def _wheel_names(out: Path) -> set[str]:
    return {p.name.split("-")[0] for p in out.glob("batch-*/*.whl")}


def test_layout_batches_scripts_and_manifest(built: tuple[Path, dict, Path]) -> None:
    out, manifest, _ = built
    batches = sorted(out.glob("batch-*"))
    assert [b.name for b in batches] == [b["name"] for b in manifest["batches"]]
    assert len(batches) == 2, "1.2 MiB + 0.4 MiB + the rest cannot fit one 1.5 MiB batch"
    for batch in batches:
        assert (batch / "install.sh").stat().st_mode & 0o111
        assert (batch / "SHA256SUMS").read_text().count("\n") == len(list(batch.glob("*.whl")))
        assert sum(p.stat().st_size for p in batch.iterdir()) <= LIMIT
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert not list(out.glob("batch-*/downloads")), "the download cache must not travel with a batch"
    assert verify_wheelhouse(out) == []


def test_resolution_follows_requires_dist_and_applies_profile(built: tuple[Path, dict, Path]) -> None:
    out, manifest, _ = built
    versions = {w["name"]: w["version"] for w in manifest["wheels"]}
    assert versions["beta"] == "2.0"            # newest satisfying beta>=2
    assert versions["pinned-pkg"] == "1.0"      # the profile's pin beats the newest
    assert versions["gamma"] == "1.0"           # transitive, via alpha
    assert versions["delta"] == "1.0"           # pulled by withextra[fast]
    assert versions["matplotlib-fake"] == "1.0"  # --extra
    assert versions["epsilon"] == "1.0"          # the profile's undeclared-but-imported addition
    assert {"winonly", "extrapkg", "skipme", "imagepkg"}.isdisjoint(versions)
    assert [s["name"] for s in manifest["skipped"]] == ["skipme"]
    assert manifest["from_image"] == [{"name": "imagepkg", "version": "1.5", "required_by": "sglang 9.9.9"}]
    assert "harness_ipython_stub" in _wheel_names(out)
    assert {w["name"]: w["why"] for w in manifest["wheels"]}["gamma"] == "alpha 1.0"


def test_kernel_wheel_is_slimmed_to_the_arch_with_a_correct_record(built: tuple[Path, dict, Path]) -> None:
    out, manifest, index = built
    (slim,) = out.glob("batch-*/sglang_kernel-*.whl")
    names = set(zipfile.ZipFile(slim).namelist())
    assert "sgl_kernel/sm90/common_ops.abi3.so" in names
    assert "sgl_kernel/spatial_ops.abi3.so" in names and "triton_kernels/__init__.py" in names
    dropped = {"sgl_kernel/flash_ops.abi3.so", "sgl_kernel/flashmla_ops.abi3.so",
               "sgl_kernel/infllm_ops.cpython-310-x86_64-linux-gnu.so", "sgl_kernel/sm100/common_ops.abi3.so"}
    assert names.isdisjoint(dropped)
    assert verify_wheel(slim) == []
    entry = next(w for w in manifest["wheels"] if w["name"] == "sglang-kernel")
    assert set(entry["slimmed"]["dropped"]) == dropped
    assert entry["slimmed"]["dropped_uncompressed_bytes"] == (400 + 100 + 100 + 70) * 1024
    assert entry["slimmed"]["installed_files"] > 0
    original = next(index.glob("sglang_kernel-*.whl"))
    assert slim.stat().st_size < original.stat().st_size - 600 * 1024


def test_install_scripts_install_every_batch_into_one_site(built: tuple[Path, dict, Path], tmp_path: Path) -> None:
    out, manifest, _ = built
    site = tmp_path / "site"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    for batch in manifest["batches"]:
        done = subprocess.run(["sh", str(out / batch["name"] / "install.sh"), str(site)], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert f"installed {batch['wheels']} wheels" in done.stdout
    assert (site / "sgl_kernel" / "sm90" / "common_ops.abi3.so").is_file()
    assert not (site / "sgl_kernel" / "flash_ops.abi3.so").exists()
    probe = "from IPython.display import HTML, display; import alpha, gamma; print(HTML('x'), display(1))"
    run = subprocess.run([sys.executable, "-c", probe], env={**env, "PYTHONPATH": str(site)},
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "None None", run.stderr
    assert not list(tmp_path.glob("wheelhouse-batch-*")), "staging dirs must be removed"


def test_verify_reports_tampering(built: tuple[Path, dict, Path], tmp_path: Path) -> None:
    out, _, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("downloads"))
    victim = next(copy.glob("batch-*/gamma-*.whl"))
    # Same zip, one file's content changed, RECORD left as it was.
    with zipfile.ZipFile(victim) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(victim, "w") as zf:
        for info, data in members:
            zf.writestr(info, b"tampered = True\n" if info.filename == "gamma/__init__.py" else data)
    problems = verify_wheelhouse(copy)
    assert any("gamma" in p and "sha256 differs from SHA256SUMS" in p for p in problems), problems
    assert any("gamma/__init__.py hash does not match RECORD" in p for p in problems), problems
    truncated = next(copy.glob("batch-*/beta-*.whl"))
    truncated.write_bytes(truncated.read_bytes()[:50])
    assert any("beta" in p and "not a readable zip" in p for p in verify_wheelhouse(copy))


def test_rebuild_refuses_to_delete_foreign_batch_dirs(built: tuple[Path, dict, Path], tmp_path: Path) -> None:
    out, _, index = built
    target = tmp_path / "out"
    (target / "batch-1").mkdir(parents=True)
    (target / "batch-1" / "mine.txt").write_text("keep me")
    image = tmp_path / "image.txt"
    image.write_text(IMAGE_TEXT)
    config = WheelhouseConfig(sglang_version=SGLANG_VERSION, python_version="3.12", image=image, arch="sm100",
                              out=target, batch_limit_bytes=LIMIT, download_dir=out / "downloads",
                              find_links=(str(index),), no_index=True)
    with pytest.raises(WheelhouseError, match="was not written by harness wheelhouse"):
        build(config, fake_profile())
    assert (target / "batch-1" / "mine.txt").read_text() == "keep me"


def test_wheel_larger_than_the_batch_limit_is_an_error(built: tuple[Path, dict, Path], tmp_path: Path) -> None:
    out, _, index = built
    image = tmp_path / "image.txt"
    image.write_text(IMAGE_TEXT)
    config = WheelhouseConfig(sglang_version=SGLANG_VERSION, python_version="3.12", image=image, arch="sm90",
                              out=tmp_path / "o", batch_limit_bytes=MIB, download_dir=out / "downloads",
                              find_links=(str(index),), no_index=True)
    with pytest.raises(WheelhouseError, match=r"^big-1\.0-py3-none-any\.whl: 1\.2 MiB is larger than the batch"):
        build(config, fake_profile())
    assert not list((tmp_path / "o").glob("batch-*")), "a failed build leaves no half-written batches"


def _install(out: Path, manifest: dict, site: Path, env: dict[str, str]) -> None:
    for batch in manifest["batches"]:
        done = subprocess.run(["sh", str(out / batch["name"] / "install.sh"), str(site)], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr


def test_overlay_over_a_base_carries_only_what_the_base_lacks(built: tuple[Path, dict, Path],
                                                              tmp_path: Path) -> None:
    """A next release (new sglang, one pin moved) built --over the base: two wheels, the rest left out."""
    base, base_manifest, index = built
    assert base_manifest["over"] is None
    release = tmp_path / "release"
    release.mkdir()
    make_wheel(release, "sglang", "9.9.10", requires=(
        "sglang-kernel==1.0.0", "alpha", "beta>=2", "skipme", "IPython", "imagepkg>=1", "pinned-pkg", "big",
        "withextra[fast]"))
    image = tmp_path / "image.txt"
    image.write_text(IMAGE_TEXT)
    profile = replace(fake_profile(), sglang_version="9.9.10", pins=("pinned-pkg==2.0", "sglang-kernel==1.0.0"))
    out = tmp_path / "overlay"
    config = WheelhouseConfig(sglang_version="9.9.10", python_version="3.12", image=image, arch="sm90", out=out,
                              batch_limit_bytes=LIMIT, download_dir=tmp_path / "downloads",
                              find_links=(str(index), str(release)), no_index=True,
                              extra_requirements=("matplotlib-fake",), over=base)
    manifest = build(config, profile)
    assert {w["name"]: w["version"] for w in manifest["wheels"]} == {"sglang": "9.9.10", "pinned-pkg": "2.0"}
    assert sorted(p.name for p in out.glob("batch-*/*.whl")) == ["pinned_pkg-2.0-py3-none-any.whl",
                                                                 "sglang-9.9.10-py3-none-any.whl"]
    # Everything else the base holds, the slimmed kernel and the stub included, is named and left out.
    shared = sorted(f"{w['name']}=={w['version']}" for w in base_manifest["wheels"]
                    if w["name"] not in ("sglang", "pinned-pkg"))
    assert "sglang-kernel==1.0.0" in shared and "harness-ipython-stub==1.0" in shared
    assert manifest["over"] == {"path": str(base), "left_out": shared}
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert verify_wheelhouse(out) == []
    # Installed into its own site and put first on the path, the overlay's versions win; the rest is the base's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    _install(base, base_manifest, tmp_path / "site", env)
    _install(out, manifest, tmp_path / "site-9.9.10", env)
    assert sorted(p.name for p in (tmp_path / "site-9.9.10").iterdir() if not p.name.endswith(".dist-info")) == [
        "pinned_pkg", "sglang"]
    probe = "import alpha, pinned_pkg, sglang, sgl_kernel; print(sglang.VERSION, pinned_pkg.VERSION, alpha.VERSION)"
    path = f"{tmp_path / 'site-9.9.10'}:{tmp_path / 'site'}"
    run = subprocess.run([sys.executable, "-c", probe], env={**env, "PYTHONPATH": path},
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and run.stdout.split() == ["9.9.10", "2.0", "1.0"], run.stderr


@pytest.mark.parametrize("text", [
    "not json\n",
    '{"schema_version": 1}\n',                # no wheels
    '{"wheels": [{"version": "1.0"}]}\n',     # a wheel without a name
    "[]\n",
])
def test_over_a_manifest_that_is_not_a_wheelhouse_manifest_names_the_file(
        text: str, built: tuple[Path, dict, Path], tmp_path: Path) -> None:
    """A manifest.json --over cannot read is an error naming --over and the file; nothing is written."""
    base, _, index = built
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(text)
    image = tmp_path / "image.txt"
    image.write_text(IMAGE_TEXT)
    config = WheelhouseConfig(sglang_version=SGLANG_VERSION, python_version="3.12", image=image, arch="sm90",
                              out=tmp_path / "o", batch_limit_bytes=LIMIT, download_dir=base / "downloads",
                              find_links=(str(index),), no_index=True, over=bad)
    with pytest.raises(WheelhouseError) as raised:
        build(config, fake_profile())
    assert str(raised.value).startswith(f"--over: {bad / 'manifest.json'} is not a wheelhouse manifest (")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("arch", "python"), [("sm100", "3.12"), ("sm90", "3.11")])
def test_over_a_base_for_another_arch_or_python_is_refused(arch: str, python: str, built: tuple[Path, dict, Path],
                                                           tmp_path: Path) -> None:
    """Leaving out the base's kernel or compiled wheels is only right for the same arch and CPython."""
    base, _, index = built
    image = tmp_path / "image.txt"
    image.write_text(IMAGE_TEXT)
    config = WheelhouseConfig(sglang_version=SGLANG_VERSION, python_version=python, image=image, arch=arch,
                              out=tmp_path / "o", batch_limit_bytes=LIMIT, download_dir=base / "downloads",
                              find_links=(str(index),), no_index=True, over=base)
    with pytest.raises(WheelhouseError) as raised:
        build(config, fake_profile())
    assert str(raised.value) == (f"--over: {base / 'manifest.json'} was built for sm90, Python 3.12; "
                                 f"this build is for {arch}, Python {python}")
    assert not (tmp_path / "o").exists()
