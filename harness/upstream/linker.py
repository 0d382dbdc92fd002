"""Runs functions of an unpacked sglang tree on the CPU without importing sglang's packages.

sglang's modules cannot be imported on a plain CPU box (triton, flashinfer, sgl_kernel, CUDA at import
time). The linker compiles one top-level statement at a time, straight from sglang's files, into a
private namespace per module, and resolves every global name on first use: a definition of the same
module is compiled in turn, an import of another sglang module links that module's binding, stdlib,
torch and numpy are imported for real, and anything else must have an explicit stand-in. The code
that runs is sglang's, unmodified; only what it imports from outside sglang is replaced.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import itertools
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

# Third-party packages the CPU build has and that sglang uses as plain libraries.
REAL_PACKAGES = frozenset({"torch", "numpy", "typing_extensions", "msgspec"})
_FUTURE_ANNOTATIONS = __import__("__future__").annotations.compiler_flag
_instances = itertools.count()


class LinkError(HarnessError, RuntimeError):
    """sglang's code needs a name the linker cannot provide; the message names module and name."""


class Unavailable(LinkError, ImportError):
    """A package not on the CPU (an ImportError, so sglang's own `except ImportError` fallbacks run)."""


class MissingName(LinkError, AttributeError):
    """The module exists but binds no such name (an AttributeError, so getattr(m, x, None) works)."""


class UnreadableSource(HarnessError, RuntimeError):
    """A file of the tree cannot be read or parsed: the tree is bad input, not a layout the check lacks."""


@dataclass(frozen=True)
class Binding:
    """Where a module binds a top-level name: a statement to compile, or an import to follow."""

    module: str
    name: str
    statement: int  # index into the module's flattened top-level statements
    source: str | None = None  # imported module (absolute), for import bindings
    attr: str | None = None  # imported attribute; None for `import x.y as z`


class SourceTree:
    """The parsed files of one unpacked sglang tree (the directory holding `sglang/`); caches ASTs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "sglang").is_dir():
            raise LinkError(f"{root}: no sglang package in this directory")

    def module_file(self, module: str) -> Path | None:
        base = self.root.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    def is_package(self, module: str) -> bool:
        return (self.root.joinpath(*module.split(".")) / "__init__.py").is_file()

    @functools.cache  # noqa: B019 - one tree per version, kept for the whole process on purpose
    def parsed(self, module: str) -> ParsedModule:
        path = self.module_file(module)
        if path is None:
            raise LinkError(f"module {module} not found under {self.root}")
        return ParsedModule(module, path, self.is_package(module))


class ParsedModule:
    """One sglang file: its top-level statements (try/if bodies flattened) and the names they bind."""

    def __init__(self, module: str, path: Path, is_package: bool) -> None:
        self.module = module
        self.path = path
        self.package = module if is_package else module.rpartition(".")[0]
        tree = parse_file(path, module)
        self.future_annotations = any(
            isinstance(n, ast.ImportFrom) and n.module == "__future__"
            and any(a.name == "annotations" for a in n.names) for n in tree.body)
        flat = list(_flatten(tree.body, conditional=False))
        self.statements: list[ast.stmt] = [node for node, _ in flat]
        self.bindings: dict[str, Binding] = {}
        # `from x import *` sources, searched in order for names the module does not bind itself.
        self.star_sources: list[str] = [
            self._absolute(n.module, n.level) for n in self.statements
            if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)]
        unconditional: set[str] = set()
        for index, (node, conditional) in enumerate(flat):
            for binding in self._bindings_of(index, node):
                # An unconditional binding wins, the last one (an @overload series ends in the real
                # function); else the first conditional one (`try: from x import y` before its fallback).
                if not conditional:
                    self.bindings[binding.name] = binding
                    unconditional.add(binding.name)
                elif binding.name not in unconditional:
                    self.bindings.setdefault(binding.name, binding)
        self._code: dict[int, types.CodeType] = {}
        self._method_code: dict[str, types.CodeType] = {}
        self._eager: dict[int, set[str]] = {}

    def _bindings_of(self, index: int, node: ast.stmt) -> Iterator[Binding]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield Binding(self.module, node.name, index)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in _bound_names(targets):
                yield Binding(self.module, name, index)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            source = self._absolute(node.module, node.level)
            for alias in node.names:
                if alias.name != "*":
                    yield Binding(self.module, alias.asname or alias.name, index, source, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    yield Binding(self.module, alias.asname, index, alias.name, None)
                else:
                    head = alias.name.split(".")[0]
                    yield Binding(self.module, head, index, head, None)

    def _absolute(self, module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        parts = self.package.split(".")
        base = parts[: len(parts) - (level - 1)]
        return ".".join([*base, module] if module else base)

    def code(self, index: int) -> types.CodeType:
        """The compiled statement (cached: every link session re-executes the same code objects)."""
        if index not in self._code:
            self._code[index] = self._compile(self.statements[index])
        return self._code[index]

    def method_code(self, qualname: str) -> types.CodeType:
        """One method of a top-level class, compiled as a plain function (decorators dropped)."""
        if qualname not in self._method_code:
            cls_name, _, method = qualname.partition(".")
            found = next((item for node in self.statements
                          if isinstance(node, ast.ClassDef) and node.name == cls_name
                          for item in node.body if isinstance(item, ast.FunctionDef) and item.name == method), None)
            if found is None:
                raise MissingName(f"{self.module} defines no {qualname}")
            self._method_code[qualname] = self._compile(ast.FunctionDef(**{**vars(found), "decorator_list": []}))
        return self._method_code[qualname]

    def _compile(self, node: ast.stmt) -> types.CodeType:
        flags = _FUTURE_ANNOTATIONS if self.future_annotations else 0
        return compile(ast.Module(body=[node], type_ignores=[]), str(self.path), "exec", flags=flags,
                       dont_inherit=True)

    def eager_names(self, index: int) -> set[str]:
        """Names a statement reads outside function bodies (class bodies cannot resolve them lazily)."""
        if index not in self._eager:  # every link session asks again for the same statements
            self._eager[index] = self._eager_names(index)
        return self._eager[index]

    def _eager_names(self, index: int) -> set[str]:
        node = self.statements[index]
        names: set[str] = set()
        stack: list[ast.AST] = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and current is not node:
                stack += [*getattr(current, "decorator_list", []), *_defaults(current)]
                if not self.future_annotations:
                    stack += _annotations(current)
                continue
            if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef)):
                stack += [*current.decorator_list, *_defaults(current)]
                if not self.future_annotations:
                    stack += _annotations(current)
                continue
            if isinstance(current, ast.AnnAssign) and self.future_annotations:
                stack += [current.target, *([current.value] if current.value else [])]
                continue
            if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Load):
                names.add(current.id)
            stack += list(ast.iter_child_nodes(current))
        # A class or function never needs itself to be defined first.
        return names - {getattr(node, "name", None)}


def parse_file(path: Path, module: str) -> ast.Module:
    """The file's AST; UnreadableSource names the file, the module and what went wrong."""
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise UnreadableSource(f"{path}: cannot parse module {module}: {exc.msg} (line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UnreadableSource(f"{path}: cannot read module {module}: {exc}") from None


def _flatten(body: list[ast.stmt], conditional: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Top-level statements with try/if blocks opened, each flagged if it sits inside one."""
    for node in body:
        if isinstance(node, ast.Try):
            for block in (node.body, node.orelse, *(h.body for h in node.handlers), node.finalbody):
                yield from _flatten(block, True)
        elif isinstance(node, ast.If):
            yield from _flatten(node.body, True)
            yield from _flatten(node.orelse, True)
        else:
            yield node, conditional


def _bound_names(targets: list[ast.expr]) -> Iterator[str]:
    """Names an assignment binds (`a = ...`, `a, (b, *c) = ...`); `x.attr = ...` binds none."""
    for target in targets:
        if isinstance(target, ast.Name):
            yield target.id
        elif isinstance(target, (ast.Tuple, ast.List)):
            yield from _bound_names(target.elts)
        elif isinstance(target, ast.Starred):
            yield from _bound_names([target.value])


def _defaults(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.expr]:
    return [d for d in [*node.args.defaults, *node.args.kw_defaults] if d is not None]


def _annotations(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.expr]:
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    out = [a.annotation for a in every if a is not None and a.annotation is not None]
    returns = getattr(node, "returns", None)
    return [*out, returns] if returns is not None else out


class _Namespace(dict):  # type: ignore[type-arg]
    """A module's globals: a miss links the name from the module's own top level."""

    def __init__(self, linker: Linker, parsed: ParsedModule, private_name: str) -> None:
        super().__init__(__name__=private_name, __file__=str(parsed.path), __package__=parsed.package,
                         __builtins__=linker.builtins)
        self.linker = linker
        self.parsed = parsed

    def __missing__(self, name: str) -> Any:
        if name in self.parsed.bindings:
            return self.linker.link(self.parsed.module, name)
        if self.parsed.star_sources and not hasattr(builtins, name):
            return self.linker.resolve(self.parsed.module, name)
        raise KeyError(name)  # CPython then looks in builtins


class LazyModule:
    """An sglang module object as seen by `import x.y` / `from x import y` inside linked code."""

    def __init__(self, linker: Linker, module: str) -> None:
        object.__setattr__(self, "_linker", linker)
        object.__setattr__(self, "__name__", module)

    def __getattr__(self, name: str) -> Any:
        return self._linker.resolve(self.__name__, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._linker.namespace(self.__name__)[name] = value

    def __repr__(self) -> str:
        return f"<linked sglang module {self.__name__}>"


class Linker:
    """One link session over a SourceTree: fresh module globals, so no state leaks between configurations.

    `stand_ins` maps "module.name" (the module a name is defined in or imported from) to the object to
    use instead; it is consulted before sglang's own definition, so process-group getters and
    accelerator libraries can be replaced while everything else stays sglang's.
    """

    def __init__(self, tree: SourceTree, stand_ins: Mapping[str, Any]) -> None:
        self.tree = tree
        self.stand_ins = dict(stand_ins)
        self._prefix = f"_harness_upstream_{next(_instances)}"
        self._namespaces: dict[str, _Namespace] = {}
        self._linking: set[tuple[str, str]] = set()
        self.builtins = {**vars(builtins), "__import__": self._import}

    def __enter__(self) -> Linker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the private module entries dataclasses and enum needed in sys.modules."""
        for name in [n for n in sys.modules if n.startswith(self._prefix + ".")]:
            del sys.modules[name]

    # --- resolution -------------------------------------------------------------------------------
    def namespace(self, module: str) -> _Namespace:
        if module not in self._namespaces:
            parsed = self.tree.parsed(module)
            private = f"{self._prefix}.{module}"
            self._namespaces[module] = _Namespace(self, parsed, private)
            # dataclasses and typing look the defining module up by name.
            sys.modules[private] = types.ModuleType(private)
        return self._namespaces[module]

    def resolve(self, module: str, name: str) -> Any:
        """`from module import name`: a stand-in, the module's binding, or its submodule."""
        key = f"{module}.{name}"
        if key in self.stand_ins:
            return self.stand_ins[key]
        if not _is_sglang(module):
            return self._foreign(module, name)
        if self.tree.module_file(module) is None:
            # A namespace package (a directory without __init__.py, e.g. sglang/srt/layers): submodules only.
            if self.tree.root.joinpath(*module.split(".")).is_dir() and self.tree.module_file(key) is not None:
                return LazyModule(self, key)
            raise LinkError(f"{module} is not in sglang's tree at {self.tree.root} (needed for {name})")
        space = self.namespace(module)
        if name in space:
            return space[name]
        if name in space.parsed.bindings:
            return self.link(module, name)
        if self.tree.module_file(key) is not None:
            return LazyModule(self, key)
        for source in space.parsed.star_sources:
            try:
                value = self.resolve(source, name)
            except MissingName:
                continue
            dict.__setitem__(space, name, value)
            return value
        raise MissingName(f"{module} defines no {name!r} in sglang at {self.tree.root}")

    def link(self, module: str, name: str) -> Any:
        """Execute the statement binding `name` in `module` (once per session) and return the value."""
        key = f"{module}.{name}"
        if key in self.stand_ins:
            return self.stand_ins[key]
        space = self.namespace(module)
        if name in space:
            return space[name]
        binding = space.parsed.bindings.get(name)
        if binding is None:
            raise MissingName(f"{module} defines no {name!r}")
        if (module, name) in self._linking:
            raise LinkError(f"{module}.{name} depends on itself while linking")
        self._linking.add((module, name))
        try:
            if binding.source is not None:
                value = self._follow(binding)
                dict.__setitem__(space, name, value)
            else:
                self._execute(space, binding.statement)
        finally:
            self._linking.discard((module, name))
        if not dict.__contains__(space, name):
            raise LinkError(f"{module}: executing the statement for {name!r} did not bind it")
        return dict.__getitem__(space, name)

    def _follow(self, binding: Binding) -> Any:
        assert binding.source is not None
        if binding.attr is None:  # `import a.b as c` or `import a`
            return self.module_object(binding.source)
        return self.resolve(binding.source, binding.attr)

    def _execute(self, space: _Namespace, index: int) -> None:
        parsed = space.parsed
        for name in parsed.eager_names(index):
            if name in parsed.bindings and not dict.__contains__(space, name):
                self.link(parsed.module, name)
        exec(parsed.code(index), space)  # sglang's own statement, compiled from its file

    def method(self, module: str, qualname: str) -> Callable[..., Any]:
        """`Class.method` of `module` as a function over the module's globals, without building the class.

        For classes whose body needs far more than the method (sglang's ServerArgs): call it with a
        stand-in `self`.
        """
        space = self.namespace(module)
        scratch: dict[str, Any] = {}
        exec(space.parsed.method_code(qualname), space, scratch)  # sglang's own method body
        return next(iter(scratch.values()))

    def module_object(self, module: str) -> Any:
        if module in self.stand_ins:
            return self.stand_ins[module]
        if _is_sglang(module):
            return LazyModule(self, module)
        return self._real_module(module)

    def _foreign(self, module: str, name: str) -> Any:
        real = self._real_module(module)
        try:
            return getattr(real, name)
        except AttributeError:
            try:
                return importlib.import_module(f"{module}.{name}")
            except ImportError:
                raise LinkError(f"{module} has no {name!r}") from None

    def _real_module(self, module: str) -> Any:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in REAL_PACKAGES:
            return importlib.import_module(module)
        raise Unavailable(f"sglang code under test needs {module} (not available on the CPU) and the "
                          f"check gives no stand-in for it")

    def _import(self, name: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (),
                level: int = 0) -> Any:
        """`__import__` for function-level imports inside linked code."""
        if level:
            package = (globals_ or {}).get("__package__") or ""
            parts = package.split(".")
            base = parts[: len(parts) - (level - 1)]
            name = ".".join([*base, name] if name else base)
        if not _is_sglang(name) and name not in self.stand_ins:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in REAL_PACKAGES:
                if fromlist:
                    return _StandInModule(self, name)
                raise Unavailable(f"sglang code under test imports {name}, which has no CPU stand-in")
            return builtins.__import__(name, globals_, locals_, fromlist, level)
        if fromlist:
            return self.module_object(name)
        return self.module_object(name.split(".")[0])


class _StandInModule:
    """A non-sglang module imported inside a function: its names must all be stand-ins."""

    def __init__(self, linker: Linker, module: str) -> None:
        self._linker = linker
        self._module = module

    def __getattr__(self, name: str) -> Any:
        key = f"{self._module}.{name}"
        if key in self._linker.stand_ins:
            return self._linker.stand_ins[key]
        # An ImportError, like a module-level import of a missing package: `from x import y` inside
        # sglang's `try: ... except ImportError` takes sglang's own fallback.
        raise Unavailable(f"sglang code under test needs {key} (not available on the CPU) and the check gives "
                          f"no stand-in for it")


def _is_sglang(module: str) -> bool:
    return module == "sglang" or module.startswith("sglang.")
