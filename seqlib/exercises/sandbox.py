"""The grader's side of a submission's kernel: shortcut rules, and undoing
tampering.

The grader (:mod:`seqlib.exercises.assemble`) adds small cells of its own to
the notebook it runs: :func:`install` before the first cell, :func:`importing`
around the cells of an exercise's section, and :func:`before_check` ahead of
every check. ``before_check`` puts back any ``seqlib`` function or class that
notebook code replaced, re-runs the reference's imports so that names such as
``swin`` or ``check_close`` mean the real modules again, and wraps the
student's functions in the exercise's :class:`~seqlib.exercises.guard.Guard`.
What it finds is appended to a notes file that the grader adds to its report.

Nothing in one Python process can stop code that attacks the process itself
(patching ``torch``, swapping the interpreter's profile hook from C); the
grader's static flags (:func:`suspicious`) point an instructor at such cells.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
import types
from typing import Any

from seqlib.exercises.guard import Guard, _code_of

_GUARD: Guard | None = None
_NOTES: str | None = None


def install(rules: dict[str, list[str]], notes: str | None = None) -> Guard:
    """Set up the guard of a grading kernel (the grader's first cell)."""
    global _GUARD, _NOTES
    _GUARD, _NOTES = Guard(rules).install(), notes
    return _GUARD


def importing(label: str | None) -> None:
    """Around the cells of an exercise's section: refuse its forbidden
    imports."""
    if _GUARD is not None:
        _GUARD.importing(label)


def _note(text: str) -> None:
    if _NOTES:
        with open(_NOTES, "a") as handle:
            handle.write(json.dumps(text) + "\n")


def _defined_in_notebook(value: Any) -> bool:
    code = _code_of(value)
    if code is not None and not os.path.isfile(code.co_filename):
        return True
    return getattr(value, "__module__", None) == "__main__"


_PRISTINE: dict[str, types.ModuleType] = {}


def _pristine(name: str) -> types.ModuleType | None:
    """A fresh copy of module ``name``, executed from its file, not registered
    anywhere."""
    if name not in _PRISTINE:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _PRISTINE[name] = module
    return _PRISTINE[name]


def restore_library() -> list[str]:
    """Put back every ``seqlib`` attribute that notebook code replaced; returns
    what was."""
    restored = []
    # Submodules first, so that a package re-exporting their names gets the
    # restored ones.
    for name, module in sorted(
        sys.modules.items(), key=lambda item: -item[0].count(".")
    ):
        if (
            not name.startswith("seqlib")
            or name == __name__
            or not isinstance(module, types.ModuleType)
        ):
            continue
        replaced = [
            attr
            for attr, value in list(vars(module).items())
            if not attr.startswith("__")
            and callable(value)
            and _defined_in_notebook(value)
        ]
        if not replaced:
            continue
        fresh = _pristine(name)
        for attr in replaced:
            if fresh is not None and hasattr(fresh, attr):
                setattr(module, attr, getattr(fresh, attr))
            else:
                delattr(module, attr)
            restored.append(f"{name}.{attr}")
    return restored


def before_check(
    namespace: dict, label: str, names: list[str], imports: str = ""
) -> None:
    """Ahead of a check of ``label``: undo tampering, then check the student's
    functions.

    Args:
        namespace: the notebook's globals.
        label: the exercise the check belongs to.
        names: the functions the exercise asks for; each is wrapped so that its
            calls follow the exercise's rules.
        imports: the reference notebook's import statements, re-run so that the
            names the check uses are the real modules and helpers.
    """
    if _GUARD is not None and not _GUARD.intact:
        _note(
            f"before the checks of {label}: builtins.__import__ had been "
            "replaced; put back"
        )
        _GUARD.install()
    for what in restore_library():
        _note(
            f"before the checks of {label}: notebook code had replaced "
            f"{what}; put back"
        )
    if imports:
        for statement in ast.parse(imports).body:
            before = {
                n: namespace[n]
                for n in _bound_names(statement)
                if n in namespace
            }
            try:
                exec(
                    compile(
                        ast.Module([statement], []),
                        "<reference imports>",
                        "exec",
                    ),
                    namespace,
                )
            # an optional import that fails here failed in the reference too
            except Exception:
                continue
            changed = [
                n
                for n, value in before.items()
                if value is not namespace.get(n)
            ]
            if changed:
                _note(
                    f"before the checks of {label}: notebook code had rebound "
                    f"{', '.join(changed)}; the reference's imports were run "
                    "again"
                )
    if _GUARD is None:
        return
    for name in names:
        if name in namespace and callable(namespace[name]):
            namespace[name] = _GUARD.wrap(label, namespace[name])


def _bound_names(statement: ast.stmt) -> list[str]:
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return [
            (a.asname or a.name).split(".")[0]
            for a in statement.names
            if a.name != "*"
        ]
    return []


# -- static flags -------------------------------------------------------------

_SUSPICIOUS_CALLS = {
    "setprofile",
    "settrace",
    "reload",
    "getsource",
    "getsourcelines",
    "exec",
    "eval",
    "__import__",
    "get_referents",
    "get_objects",
}
_SUSPICIOUS_ATTRS = {
    "__code__",
    "__closure__",
    "__wrapped__",
    "__globals__",
    "__builtins__",
    "modules",
}


def suspicious(source: str) -> list[str]:
    """What in a cell's source deserves an instructor's look (empty when
    nothing)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    modules = _MODULE_ALIASES | {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else getattr(func, "id", "")
            )
            if name in _SUSPICIOUS_CALLS:
                found.append(f"calls {name}()")
        elif (
            isinstance(node, ast.Attribute) and node.attr in _SUSPICIOUS_ATTRS
        ):
            found.append(f"uses .{node.attr}")
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [node.target]
            )
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(
                    target.value, (ast.Name, ast.Attribute)
                ):
                    if ast.unparse(target.value).split(".")[0] in modules:
                        found.append(f"assigns {ast.unparse(target)}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = (
                node.module
                if isinstance(node, ast.ImportFrom)
                else node.names[0].name
            )
            if module and module.startswith("seqlib.exercises.guard"):
                found.append("imports the grader's guard")
    return list(dict.fromkeys(found))


# Names the chapters bind to modules; assigning their attributes patches a
# library.
_MODULE_ALIASES = {
    "seqlib",
    "torch",
    "np",
    "numpy",
    "F",
    "nn",
    "builtins",
    "sys",
    "attention",
    "boxes",
    "captioning",
    "caption_analysis",
    "caption_losses",
    "decoding",
    "detr",
    "layers",
    "matcher",
    "metrics",
    "positional",
    "rvt",
    "scores",
    "seq2seq",
    "swin",
    "tlb",
    "train",
    "transformer",
    "vit",
    "vivit",
    "bx",
    "checks",
}
