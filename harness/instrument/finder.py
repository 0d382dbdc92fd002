"""A meta path finder that runs callbacks right after a watched module has executed (stdlib only)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

ModuleCallback = Callable[[ModuleType], None]
SpecCallback = Callable[[str, importlib.machinery.ModuleSpec], None]


class PostImportFinder(importlib.abc.MetaPathFinder):
    """Delegates finding to the finders after it and wraps the loader of watched modules.

    `on_spec` sees the spec of every watched module before it executes (used to locate the sglang
    tree); `on_import` callbacks run after the module body, before anyone imports from it.
    """

    def __init__(self, on_import: Mapping[str, Sequence[ModuleCallback]],
                 on_spec: Mapping[str, SpecCallback] | None = None) -> None:
        self._on_import = {k: tuple(v) for k, v in on_import.items()}
        self._on_spec = dict(on_spec or {})
        self._busy = threading.local()

    def watches(self, fullname: str) -> bool:
        return fullname in self._on_import or fullname in self._on_spec

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if not self.watches(fullname):
            return None
        busy: set[str] = self._busy.__dict__.setdefault("names", set())
        if fullname in busy:
            return None
        busy.add(fullname)
        try:
            spec = self._find_with_rest(fullname, path, target)
        finally:
            busy.discard(fullname)
        if spec is None or spec.loader is None:
            return spec
        if fullname in self._on_spec:
            _call_safely(self._on_spec[fullname], fullname, spec)
        callbacks = self._on_import.get(fullname)
        if callbacks and hasattr(spec.loader, "exec_module"):
            spec.loader = _HookedLoader(spec.loader, callbacks)
        return spec

    def _find_with_rest(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
                        ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def run_for_loaded(self) -> None:
        """Apply callbacks to watched modules that were imported before the finder was installed."""
        for name, callbacks in self._on_import.items():
            module = sys.modules.get(name)
            if module is not None:
                for callback in callbacks:
                    _call_safely(callback, module)


class _HookedLoader(importlib.abc.Loader):
    """Wraps a loader: same module creation and execution, then the callbacks."""

    def __init__(self, loader: Any, callbacks: Sequence[ModuleCallback]) -> None:
        self._loader = loader
        self._callbacks = callbacks

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        for callback in self._callbacks:
            _call_safely(callback, module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, is_package, ...: tracebacks and inspect keep working.
        return getattr(self._loader, name)


def _call_safely(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception as exc:  # a failing hook must never fail the import
        sys.stderr.write(f"harness probe: hook error ({type(exc).__name__}: {exc})\n")
