"""Bad input: one clear line naming the field or file, a non-zero exit, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.wheelhouse import main


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.txt"
    path.write_text("torch==2.11.0\n")
    return path


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "sm80"], "--arch: expected one of sm90, sm100, got 'sm80'"),
    (["--python", "3"], "--python: expected MAJOR.MINOR like 3.12, got '3'"),
    (["--sglang", "latest"], "--sglang: expected a version like 0.5.16, got 'latest'"),
    (["--sglang", "0.4.0"], "--sglang: no wheelhouse profile for sglang 0.4.0 (known: 0.5.16, 0.5.17)"),
    (["--batch-mib", "0.5"], "--batch-mib: expected at least 1 MiB, got 524288 bytes"),
    (["--extra", "not a req!"], "--extra: not a requirement: 'not a req!'"),
])
def test_bad_arguments_name_the_field(args: list[str], message: str, image: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = {"--sglang": "0.5.16", "--python": "3.12", "--arch": "sm90", "--image": str(image),
            "--out": str(tmp_path / "out")}
    overrides = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["build"] + [x for k, v in {**base, **overrides}.items() for x in (k, v)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness wheelhouse: ") and message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("batch-*"))



@pytest.mark.parametrize("over", ["empty", "missing"])
def test_over_a_dir_without_manifest_names_over(over: str, image: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--over a directory that holds no built wheelhouse fails before any resolving or writing."""
    (tmp_path / "empty").mkdir()
    argv = ["build", "--sglang", "0.5.17", "--image", str(image), "--arch", "sm90", "--out", str(tmp_path / "o"),
            "--over", str(tmp_path / over)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"harness wheelhouse: --over: {tmp_path / over} holds no manifest.json "
                   "(build that wheelhouse first)")
    assert not (tmp_path / "o").exists()

@pytest.mark.parametrize(("text", "message"), [
    ("torch\n", "image.txt:1: expected NAME==VERSION"),
    ("# header\ntorch==2.11.0\nnumpy==not.a.version!\n", "image.txt:3: invalid version 'not.a.version!' for numpy"),
    ("torch==2.11.0\nTorch==2.10.0\n", "image.txt:2: Torch listed twice (2.11.0 and 2.10.0)"),
    ("# nothing\n", "lists no packages"),
])
def test_bad_image_file_names_file_and_line(text: str, message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "image.txt"
    path.write_text(text)
    argv = ["build", "--sglang", "0.5.16", "--image", str(path), "--arch", "sm90", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_image_and_missing_package_are_reported(image: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "harness.wheelhouse", "build", "--sglang", "0.5.16", "--arch",
                           "sm90", "--image", str(tmp_path / "nope.txt")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"harness wheelhouse: --image: no such file: {tmp_path / 'nope.txt'}"
    empty_index = tmp_path / "index"
    empty_index.mkdir()
    done = subprocess.run([sys.executable, "-m", "harness.wheelhouse", "build", "--sglang", "0.5.16", "--arch",
                           "sm90", "--image", str(image), "--out", str(tmp_path / "o"), "--no-index",
                           "--find-links", str(empty_index)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("pip download: no cp312 manylinux x86_64 wheel for sglang==0.5.16")


def test_verify_of_a_dir_without_manifest_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path)]) == 2
    assert "manifest.json: not a wheelhouse manifest" in capsys.readouterr().err


def test_bundled_image_name_resolves_to_the_gpu_image() -> None:
    from harness.wheelhouse.cli import _image_path
    from harness.wheelhouse.image import read_image

    packages = read_image(_image_path("cuda-torch2.11-py312"))
    assert str(packages["torch"]) == "2.11.0" and str(packages["transformers"]) == "5.17.0"
    assert "fastapi" not in packages and "pyzmq" not in packages  # the shared doc: the image lacks them
