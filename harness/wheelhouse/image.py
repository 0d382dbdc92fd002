"""Read what the target image already has from a `pip list --format=freeze` file."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from harness.wheelhouse.errors import WheelhouseError


def read_image(path: Path) -> dict[NormalizedName, Version]:
    """Map each package of the image (canonical name) to its version; `#` starts a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WheelhouseError(f"--image: cannot read {path}: {exc}") from exc
    packages: dict[NormalizedName, Version] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        where = f"{path}:{number}"
        if not sep or not name.strip() or not version.strip():
            raise WheelhouseError(f"{where}: expected NAME==VERSION (pip list --format=freeze), got {raw!r}")
        try:
            parsed = Version(version.strip())
        except InvalidVersion as exc:
            raise WheelhouseError(f"{where}: invalid version {version.strip()!r} for {name.strip()}") from exc
        key = canonicalize_name(name.strip())
        if key in packages and packages[key] != parsed:
            raise WheelhouseError(f"{where}: {name.strip()} listed twice ({packages[key]} and {parsed})")
        packages[key] = parsed
    if not packages:
        raise WheelhouseError(f"--image: {path} lists no packages")
    return packages
