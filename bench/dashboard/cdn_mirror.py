"""The third-party files an `asv publish` page loads from CDNs, fetched once from the npm registry.

The dashboard is meant for browsers online (GitHub Pages); the test machine reaches only package
registries, so the browser is served the same files from the npm packages they are published in.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

# CDN URL -> (npm package@version, path inside the package). stupidtable 1.0.1 is not on npm: its
# successor 1.1.3 (same $.fn.stupidtable API) stands in; flot's npm package has unminified files.
FILES: dict[str, tuple[str, str]] = {
    "https://code.jquery.com/jquery-3.3.1.min.js": ("jquery@3.3.1", "dist/jquery.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        ("bootstrap@3.1.1", "dist/css/bootstrap.min.css"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        ("bootstrap@3.1.1", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        ("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": ("blueimp-md5@2.19.0", "js/md5.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": ("flot@0.8.3", "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": ("flot@0.8.3", "jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        ("flot@0.8.3", "jquery.flot.categories.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        ("flot@0.8.3", "jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        ("stupid-table-plugin@1.1.3", "stupidtable.min.js"),
}


def mirror(cache: Path) -> dict[str, Path]:
    """URL -> local file for every entry of FILES, running `npm pack` for packages not cached yet."""
    npm = shutil.which("npm")
    result = {}
    for url, (spec, inner) in FILES.items():
        unpacked = cache / spec.replace("/", "_")
        if not (unpacked / "package" / inner).is_file():
            if npm is None:
                raise RuntimeError("npm is needed to fetch the dashboard's JS libraries (apt-get install npm)")
            cache.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run([npm, "pack", "--silent", "--pack-destination", str(cache), spec],
                                  capture_output=True, text=True, timeout=300, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"npm pack {spec} failed: {proc.stderr.strip()[-500:]}")
            tarball = cache / proc.stdout.strip().splitlines()[-1]
            with tarfile.open(tarball) as tar:
                tar.extractall(unpacked, filter="data")
            tarball.unlink()
        result[url] = unpacked / "package" / inner
        if not result[url].is_file():
            raise RuntimeError(f"{spec} has no {inner}")
    return result


def integrity_mismatches(files: dict[str, Path], html: str) -> frozenset[str]:
    """URLs whose local file does not match the page's Subresource Integrity hash for it."""
    mismatched = set()
    for url, path in files.items():
        match = re.search(re.escape(url) + r'" integrity="(sha\d+)-([^"]+)"', html)
        if match is None:
            continue
        algorithm, expected = match.groups()
        actual = base64.b64encode(hashlib.new(algorithm, path.read_bytes()).digest()).decode()
        if actual != expected:
            mismatched.add(url)
    return frozenset(mismatched)
