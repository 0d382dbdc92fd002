"""Work out which wheels the target lacks: sglang's Requires-Dist, followed transitively, minus the image.

Rules, in order, for each requirement: a profile skip drops it; a profile stub replaces it when the
image lacks it; the image's own package wins unless the profile pins another version; otherwise the
newest wheel satisfying every requirement seen so far (or the pin) is downloaded and its own
Requires-Dist followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from harness.wheelhouse.download import PipSource, find_downloaded, pip_download
from harness.wheelhouse.errors import WheelhouseError
from harness.wheelhouse.profile import Profile, Stub
from harness.wheelhouse.wheelfile import read_requires_dist, wheel_identity

MAX_ROUNDS = 40


@dataclass(frozen=True)
class PlannedWheel:
    name: NormalizedName
    version: str
    path: Path
    why: str


@dataclass(frozen=True)
class Resolution:
    """The wheels to carry, what the image already covers, what was skipped and why."""

    wheels: tuple[PlannedWheel, ...]
    from_image: tuple[tuple[str, str, str], ...]
    skipped: tuple[tuple[str, str, str], ...]
    stubs: tuple[Stub, ...]
    notes: tuple[str, ...]


@dataclass
class _Chosen:
    path: Path
    version: Version
    extras: frozenset[str]
    why: str


@dataclass
class _State:
    chosen: dict[NormalizedName, _Chosen] = field(default_factory=dict)
    specs: dict[NormalizedName, SpecifierSet] = field(default_factory=dict)
    from_image: dict[NormalizedName, tuple[str, str, str]] = field(default_factory=dict)
    skipped: dict[NormalizedName, tuple[str, str, str]] = field(default_factory=dict)
    stubs: dict[NormalizedName, Stub] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def target_environment(python_version: str) -> dict[str, str]:
    """Marker environment of a CPython on x86-64 Linux."""
    return {"python_version": python_version, "python_full_version": f"{python_version}.0",
            "implementation_name": "cpython", "implementation_version": f"{python_version}.0",
            "platform_python_implementation": "CPython", "os_name": "posix", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "platform_release": "",
            "platform_version": "", "extra": ""}


def applies(marker: Marker | None, env: dict[str, str], extras: frozenset[str]) -> bool:
    """True when the marker holds on the target for no extra or for one of the requested extras."""
    if marker is None:
        return True
    return any(marker.evaluate({**env, "extra": extra}) for extra in ("", *sorted(extras)))


def resolve(roots: list[Requirement], profile: Profile, image: dict[NormalizedName, Version], downloads: Path,
            python_version: str, source: PipSource) -> Resolution:
    """Follow Requires-Dist from the roots, downloading one round of wheels at a time."""
    env = target_environment(python_version)
    state = _State()
    pending: list[tuple[Requirement, str]] = [(root, "requested") for root in roots]
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        fetch = _plan_round(pending, profile, image, state)
        pip_download([req for req, _why in fetch.values()], downloads, python_version, source)
        pending = []
        for name, (req, why) in fetch.items():
            path = find_downloaded(req, downloads)
            version = wheel_identity(path)[1]
            extras = frozenset(req.extras) | (state.chosen[name].extras if name in state.chosen else frozenset())
            state.chosen[name] = _Chosen(path, version, extras, why)
            for line in read_requires_dist(path):
                dep = _parse(line, path)
                if applies(dep.marker, env, extras):
                    pending.append((dep, f"{name} {version}"))
    else:
        raise WheelhouseError(f"resolution did not settle after {MAX_ROUNDS} rounds; last: {pending[:3]}")
    wheels = tuple(PlannedWheel(name, str(c.version), c.path, c.why) for name, c in sorted(state.chosen.items()))
    return Resolution(wheels, tuple(v for _k, v in sorted(state.from_image.items())),
                      tuple(v for _k, v in sorted(state.skipped.items())),
                      tuple(v for _k, v in sorted(state.stubs.items())), tuple(state.notes))


def _plan_round(pending: list[tuple[Requirement, str]], profile: Profile, image: dict[NormalizedName, Version],
                state: _State) -> dict[NormalizedName, tuple[Requirement, str]]:
    fetch: dict[NormalizedName, tuple[Requirement, str]] = {}
    for req, why in pending:
        name = canonicalize_name(req.name)
        reason = profile.skip_reason(name)
        if reason is not None:
            state.skipped.setdefault(name, (name, reason, why))
            continue
        stub = profile.stub_for(name)
        if stub is not None and name not in image:
            state.stubs[name] = stub
            continue
        pin = profile.pin_for(name)
        if name in image and (pin is None or image[name] == Version(pin)):
            if not req.specifier.contains(image[name], prereleases=True):
                state.notes.append(f"image's {name} {image[name]} does not satisfy {why}'s {req}; "
                                   "kept the image's (pin it in the profile to replace it)")
            state.from_image.setdefault(name, (name, str(image[name]), why))
            continue
        if pin is not None:
            if not req.specifier.contains(Version(pin), prereleases=True):
                state.notes.append(f"pin {name}=={pin} overrides {why}'s {req}")
            spec = SpecifierSet(f"=={pin}")
        else:
            spec = state.specs.get(name, SpecifierSet()) & req.specifier
        state.specs[name] = spec
        chosen = state.chosen.get(name)
        if chosen is not None and spec.contains(chosen.version, prereleases=True) and \
                set(req.extras) <= chosen.extras:
            continue
        if chosen is not None and spec.contains(chosen.version, prereleases=True):
            # Same wheel, new extras: read its metadata again for the extra's requirements.
            spec = SpecifierSet(f"=={chosen.version}")
        extras = set(req.extras) | (set(fetch[name][0].extras) if name in fetch else set())
        first_why = chosen.why if chosen is not None else (fetch[name][1] if name in fetch else why)
        extras_part = f"[{','.join(sorted(extras))}]" if extras else ""
        fetch[name] = (Requirement(f"{name}{extras_part}{spec}"), "pinned by profile" if pin else first_why)
    return fetch


def _parse(line: str, wheel: Path) -> Requirement:
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        raise WheelhouseError(f"{wheel.name}: unreadable Requires-Dist {line!r} ({str(exc).splitlines()[0]})") from exc
    if req.url:
        raise WheelhouseError(f"{wheel.name}: Requires-Dist {line!r} points at a URL; cannot fetch offline")
    return req
