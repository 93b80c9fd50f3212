"""Every public name of sphcnn and sphcnn_kernels (their __all__) is documented in
Google style: an "Args:" section with one entry per parameter of its signature
(constructor parameters for classes, "rngs" included; *args and **kwargs may be
left out), no entry for a parameter that does not exist, and "Returns:" for
functions and __call__ methods. A class's __call__, where the package defines
one, is checked the same way. Plain data (e.g. REGRESSOR_PRESETS) needs a
comment or a docstring where it is assigned."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys

import pytest

PACKAGES = ("sphcnn", "sphcnn_kernels")
VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _public_names():
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            yield pytest.param(package, name, id=f"{package}.{name}")


def _ours(obj) -> bool:
    """Whether obj (a class or function) is defined in one of the packages."""
    return (getattr(obj, "__module__", None) or "").split(".")[0] in PACKAGES


def _defining(cls, attribute: str):
    """The first class of cls's MRO that defines `attribute` itself."""
    return next((c for c in cls.__mro__ if attribute in vars(c)), None)


def _parameters(signature: inspect.Signature, drop_first: bool = False) -> list[inspect.Parameter]:
    parameters = list(signature.parameters.values())
    return parameters[1:] if drop_first else parameters


def constructor_parameters(cls) -> list[inspect.Parameter]:
    """The parameters a class is called with (without self)."""
    owner = _defining(cls, "__init__")
    if owner is not None and _ours(owner):
        return _parameters(inspect.signature(vars(owner)["__init__"]), drop_first=True)
    # NamedTuples (fields of __new__) and classes built elsewhere
    return _parameters(inspect.signature(cls))


def own_call(cls):
    """cls.__call__ where one of the packages defines it, else None."""
    owner = _defining(cls, "__call__")
    return vars(owner)["__call__"] if owner is not None and _ours(owner) else None


def args_entries(doc: str) -> list[str] | None:
    """The names the "Args:" section of a Google-style docstring documents (an
    entry "a, b (type): text" names a and b; leading * and ** dropped), or None
    without such a section."""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
    if start is None:
        return None
    base = len(lines[start]) - len(lines[start].lstrip())
    names, entry_indent = [], None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= base:
            break
        if entry_indent is None:
            entry_indent = indent
        if indent != entry_indent or ":" not in line:
            continue
        head = re.sub(r"\([^)]*\)", "", line.split(":", 1)[0])
        names += [part.strip().lstrip("*") for part in head.split(",") if part.strip()]
    return names


def _check_documented(label: str, doc: str | None, parameters: list[inspect.Parameter],
                      needs_returns: bool) -> list[str]:
    """Problems of one docstring against the parameters it documents."""
    if not doc:
        return [f"{label} has no docstring"]
    problems = []
    documented = args_entries(doc)
    required = [p.name for p in parameters if p.kind not in VARIADIC]
    if required and documented is None:
        problems.append(f"{label} has no 'Args:' section (parameters {required})")
    documented = documented or []
    for name in required:
        if name not in documented:
            problems.append(f"{label}: parameter {name!r} is missing from 'Args:'")
    known = {p.name for p in parameters}
    for name in documented:
        if name not in known:
            problems.append(f"{label}: 'Args:' documents {name!r}, which is not a parameter")
    if needs_returns and not re.search(r"^\s*Returns:", doc, re.MULTILINE):
        problems.append(f"{label} has no 'Returns:' section")
    return problems


def _assignment_is_commented(package: str, name: str, obj) -> bool | None:
    """Whether the module-level assignment of `name` in the package (the module
    whose global is obj) has a comment just above it or a string just below it;
    None where no such assignment is found."""
    for module_name, module in sorted(sys.modules.items()):
        if module_name.split(".")[0] != package or getattr(module, name, None) is not obj:
            continue
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        tree = ast.parse(source)
        lines = source.splitlines()
        for i, node in enumerate(tree.body):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
                continue
            above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
            following = tree.body[i + 1] if i + 1 < len(tree.body) else None
            below = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                and isinstance(following.value.value, str)
            return above.startswith("#") or below
    return None


@pytest.mark.parametrize("package,name", list(_public_names()))
def test_public_name_is_documented(package, name):
    obj = getattr(importlib.import_module(package), name)
    label = f"{package}.{name}"
    if inspect.isclass(obj):
        problems = _check_documented(label, inspect.getdoc(obj), constructor_parameters(obj), needs_returns=False)
        call = own_call(obj)
        if call is not None:
            problems += _check_documented(f"{label}.__call__", inspect.getdoc(call),
                                          _parameters(inspect.signature(call), drop_first=True), needs_returns=True)
    elif callable(obj):
        problems = _check_documented(label, inspect.getdoc(obj), _parameters(inspect.signature(obj)),
                                     needs_returns=True)
    else:
        commented = _assignment_is_commented(package, name, obj)
        if commented is None:
            pytest.skip(f"{label} is data whose assignment was not found")
        problems = [] if commented else [f"{label} (data) has no comment above or docstring below its assignment"]
    assert not problems, "\n".join(problems)


def test_args_parser_reads_grouped_and_typed_entries():
    doc = "Summary.\n\nArgs:\n  a, b: two.\n    continued: not an entry\n  c (int): three.\n  **kw: rest.\n\n" \
          "Returns:\n  x: not an argument."
    assert args_entries(doc) == ["a", "b", "c", "kw"]
    assert args_entries("No sections.") is None
