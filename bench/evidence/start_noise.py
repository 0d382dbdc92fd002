"""How much BS=1 TPOT moves from one server start to the next, per CPU pinning setting.

The gate's power is bounded by this start-to-start spread (tau), not by request noise: this runs
K server starts per setting, interleaved (setting A, B, C, A, B, C, ...) so drift hits all alike,
and reports tau, the request-level robust CV and the per-start medians.

    python bench/evidence/start_noise.py --out DIR --device cuda --pin none --pin auto --pin 2-3/1
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from harness.config import RunConfig
from harness.run import run_all
from harness.scenarios.catalog import load_scenario
from harness.serve.affinity import AffinityError, Pinning, parse_pinning
from harness.store.atomic import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class NoisePlan:
    out: Path
    pins: tuple[str, ...]
    starts: int
    requests: int
    warmups: int | None
    scenario: str
    engine_args: tuple[str, ...]


@dataclass(frozen=True)
class StartSpread:
    """One setting's per-start medians and what they say about the noise."""

    pin: str
    medians_ms: tuple[float, ...]
    tau: float         # start-to-start sd of log median beyond what request noise explains
    request_cv: float  # robust CV of per-request TPOT within a start (1.4826 MAD / median)

    @classmethod
    def from_starts(cls, pin: str, starts: list[np.ndarray]) -> StartSpread:
        medians = np.array([np.median(s) for s in starts])
        cvs = np.array([1.4826 * np.median(np.abs(s - np.median(s))) / np.median(s) for s in starts])
        # Var of a median ~ (1.2533 sd)^2 / n; subtract it so tau is the part more requests cannot remove.
        sampling = np.mean([(1.2533 * cv) ** 2 / s.size for cv, s in zip(cvs, starts, strict=True)])
        between = float(np.var(np.log(medians), ddof=1)) if medians.size > 1 else 0.0
        return cls(pin, tuple(float(m) for m in medians), float(np.sqrt(max(0.0, between - sampling))),
                   float(np.median(cvs)))


def run(plan: NoisePlan) -> list[StartSpread]:
    scenario = load_scenario(plan.scenario)
    pinnings = [_pinning(p) for p in plan.pins]
    samples: dict[str, list[np.ndarray]] = {p: [] for p in plan.pins}
    launcher = (sys.executable, "-m", "reference_impl.engine", *plan.engine_args)
    for start in range(plan.starts):
        for pin, pinning in zip(plan.pins, pinnings, strict=True):
            out = plan.out / "runs" / _label(pin) / f"start-{start:02d}"
            config = RunConfig(out_dir=out, requests=plan.requests,
                               warmups=plan.warmups, launcher=launcher, pinning=pinning)
            began = time.monotonic()
            (result,) = run_all(config, [scenario], ["bench/evidence/start_noise.py", pin], Console(stderr=True, quiet=True))
            if result["status"] != "ok":
                raise SystemExit(f"start_noise: {out}: run failed: {result['failure']}")
            tpot = np.array([s["tpot_ms"] for s in result["samples"] if s["ok"]])
            samples[pin].append(tpot)
            print(f"[start_noise] pin {pin} start {start}: median {np.median(tpot):.4f} ms "
                  f"({time.monotonic() - began:.0f} s)", file=sys.stderr)
    return [StartSpread.from_starts(pin, samples[pin]) for pin in plan.pins]


def report(plan: NoisePlan, spreads: list[StartSpread], where: str) -> str:
    lines = [f"# Server start-to-start TPOT spread ({where})", "",
             f"Scenario `{plan.scenario}`, {plan.starts} starts per setting (interleaved), {plan.requests} "
             f"requests per start; engine args `{' '.join(plan.engine_args) or '(none)'}`.", "",
             "| pin | median of starts (ms) | min..max (ms) | tau (start spread) | request robust CV |",
             "|---|---|---|---|---|"]
    for s in spreads:
        m = np.array(s.medians_ms)
        lines.append(f"| `{s.pin}` | {np.median(m):.4f} | {m.min():.4f}..{m.max():.4f} | {s.tau:.2%} | "
                     f"{s.request_cv:.2%} |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(plan.out / "start_noise.md", text)
    atomic_write_json(plan.out / "start_noise.json", {
        "schema_version": 1, "where": where, "scenario": plan.scenario, "requests": plan.requests,
        "engine_args": list(plan.engine_args),
        "settings": [{"pin": s.pin, "medians_ms": list(s.medians_ms), "tau": s.tau, "request_cv": s.request_cv}
                     for s in spreads]})
    return text


def _pinning(spec: str) -> Pinning:
    try:
        return parse_pinning(spec)
    except AffinityError as exc:
        raise SystemExit(f"start_noise: {exc}") from exc


def _label(pin: str) -> str:
    return "pin-" + "".join(c if c.isalnum() else "_" for c in pin)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pin", action="append", default=None, help="a pinning setting to compare (repeatable)")
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--warmups", type=int, default=None)
    p.add_argument("--scenario", default="baseline")
    p.add_argument("--device", default=None, help="engine --device (cpu|cuda)")
    p.add_argument("--where", default="this machine")
    args = p.parse_args(argv)
    if args.starts < 2 or args.requests < 2:
        p.error("--starts and --requests: expected at least 2")
    plan = NoisePlan(args.out, tuple(args.pin or ("none", "auto")), args.starts, args.requests, args.warmups,
                     args.scenario, ("--device", args.device) if args.device else ())
    print(report(plan, run(plan), args.where), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
