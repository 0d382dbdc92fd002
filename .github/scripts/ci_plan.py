"""Print GitHub step outputs for the GPU workflows: runner labels and the sglang scenario matrix.

The scenario catalog (harness/scenarios/*.toml, parsed by harness.scenarios.catalog) and
.github/gpu-runner.json are the only sources: the workflows never list scenarios or labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def runner_labels(root: Path) -> list[str]:
    """The self-hosted GPU runner's labels from .github/gpu-runner.json."""
    path = root / ".github" / "gpu-runner.json"
    labels = json.loads(path.read_text(encoding="utf-8")).get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise SystemExit(f"{path}: 'labels' must be a non-empty list of strings")
    return labels


def sglang_scenarios(root: Path) -> list[str]:
    """Names of the catalog's scenarios that target sglang, sorted; invalid TOML fails here."""
    # The plan job runs before any install: the catalog parser is stdlib-only, so import it from the checkout.
    sys.path.insert(0, str(root))
    from harness.scenarios.catalog import ScenarioError, list_scenarios

    try:
        names = sorted(s.name for s in list_scenarios() if "sglang" in s.targets)
    except ScenarioError as exc:
        raise SystemExit(f"scenario catalog: {exc}") from None
    if not names:
        raise SystemExit(f"{root / 'harness' / 'scenarios'}: no scenario targets sglang")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Step outputs for the GPU workflows.")
    parser.add_argument("--root", type=Path, default=ROOT, help="harness checkout (default: this one)")
    args = parser.parse_args(argv)
    print(f"runner={json.dumps(runner_labels(args.root), separators=(',', ':'))}")
    print(f"scenarios={json.dumps(sglang_scenarios(args.root), separators=(',', ':'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
