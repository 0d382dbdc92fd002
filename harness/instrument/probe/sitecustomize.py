"""Harness probe bootstrap: installs import hooks when HARNESS_INSTRUMENT_DIR is set.

Put on PYTHONPATH by harness.instrument.launch.instrument_env. It never raises into the host
process, and it runs the next sitecustomize on sys.path so an existing one keeps working.
"""

import os
import sys


def _load_private_package(name, package_dir):
    """Import the package in `package_dir` as `name` (its relative imports resolve inside it)."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(package_dir, "__init__.py"), submodule_search_locations=[package_dir]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load_private_packages():
    """harness/instrument as `_harness_instrument`, reference_impl/contract (the record format, step timer
    and delay switch it writes with) as `_harness_contract`: the host needs neither package on its path."""
    instrument_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = os.path.dirname(os.path.dirname(instrument_dir))
    _load_private_package("_harness_contract", os.path.join(root, "reference_impl", "contract"))
    _load_private_package("_harness_instrument", instrument_dir)


def _install_probe():
    if not os.environ.get("HARNESS_INSTRUMENT_DIR"):
        return
    try:
        _load_private_packages()
        import importlib

        importlib.import_module("_harness_instrument.probe_install").install()
    except Exception as exc:  # the probe must never break the server
        sys.stderr.write(f"harness probe: not installed ({type(exc).__name__}: {exc})\n")


def _chain_next_sitecustomize():
    """Run the sitecustomize that this file shadows, if any (site.py imports only the first)."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.stderr.write(f"Error in sitecustomize {spec.origin}: {type(exc).__name__}: {exc}\n")


_install_probe()
_chain_next_sitecustomize()
