"""Keep the grading of an implement exercise honest: no shortcuts, genuine
references.

An implement exercise may forbid library code, in the ``forbid`` metadata of
its check cells: a list of dotted names, each a module (``"seqlib"``,
``"einops"``, ``"sklearn"``), a function (``"seqlib.swin.window_partition"``),
a class (all its methods: ``"seqlib.rvt.ConvLSTM1x1"``) or a builtin
(``"torch.nn.functional.conv2d"``). While the student's function runs, called
from a check, a profile hook (``sys.setprofile``) sees every Python and C call
it makes, directly or through any alias, ``getattr``, ``functools.partial``, a
reloaded module or library code; a call into a forbidden name is recorded, and
when the student's function returns it raises :class:`ShortcutError` naming the
rule and the line. Importing a forbidden name from notebook code raises at
once. The checks themselves call the real references: the hook only runs inside
the student's function.

In the submission's kernel the grader drives a :class:`Guard` through
:mod:`seqlib.exercises.sandbox`, which also undoes tampering before each check.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import os
import sys
import threading
import types
from pathlib import Path
from typing import Any, Callable, Iterable

# Called from a student's function, these would switch the guard off or copy
# library source; they count as shortcuts for every exercise.
ALWAYS_FORBIDDEN = (
    "sys.setprofile",
    "sys.settrace",
    "threading.setprofile",
    "threading.settrace",
    "inspect.getsource",
    "inspect.getsourcelines",
    "importlib.reload",
)


class ShortcutError(RuntimeError):
    """A student's function called (or imported) what its exercise forbids."""


def _resolve(name: str) -> tuple[Any, str]:
    """The object a dotted name refers to, and the longest importable module
    prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj, module_name
    raise ImportError(name)


def _module_path(module: types.ModuleType) -> str | None:
    """A package's folder (with a trailing separator) or a module's file."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    if Path(file).name == "__init__.py":
        return str(Path(file).parent) + os.sep
    return file


def _code_of(obj: Any) -> types.CodeType | None:
    obj = getattr(obj, "__func__", obj)
    try:
        obj = __import__("inspect").unwrap(obj)
    except ValueError:
        pass
    return getattr(obj, "__code__", None)


class _Rule:
    """One forbidden name, resolved to what the profile hook can recognise."""

    def __init__(self, name: str):
        self.name = name
        self.module = ""  # the name is a module: importing it is forbidden too
        self.path: str | None = (
            None  # ... and running any code from this file or folder
        )
        self.code: tuple[str, str] | None = (
            None  # (file, qualname or "Class.") of a function or class
        )
        self.builtin: Any = None  # a C function, recognised by identity
        self.methods: set[str] = set()  # a class's methods (for Python 3.10)
        try:
            obj, module_name = _resolve(name)
        except (ImportError, AttributeError):
            # Not installed here: only its import can be refused.
            self.module = name
            return
        if isinstance(obj, types.ModuleType):
            self.module, self.path = name, _module_path(obj)
        elif isinstance(obj, type):
            file = getattr(sys.modules.get(obj.__module__), "__file__", None)
            self.code = (file, obj.__qualname__ + ".") if file else None
            self.methods = {
                k for k, v in vars(obj).items() if _code_of(v) is not None
            }
        elif (code := _code_of(obj)) is not None:
            self.code = (code.co_filename, _qualname(code))
        else:
            self.builtin = obj

    def matches_code(self, code: types.CodeType) -> bool:
        if self.path is not None:
            return (
                code.co_filename.startswith(self.path)
                if self.path.endswith(os.sep)
                else code.co_filename == self.path
            )
        if self.code is None:
            return False
        file, qualname = self.code
        if code.co_filename != file:
            return False
        if not hasattr(code, "co_qualname"):  # Python 3.10
            return (
                code.co_name in self.methods
                if qualname.endswith(".")
                else code.co_name == qualname
            )
        return (
            code.co_qualname.startswith(qualname)
            if qualname.endswith(".")
            else code.co_qualname == qualname
        )

    def matches_builtin(self, func: Any) -> bool:
        """Whether a C function, or a method bound to an object (``x.mean``),
        is this rule's."""
        if func is self.builtin:
            return True
        owner = getattr(
            self.builtin, "__objclass__", None
        )  # a method descriptor: Tensor.mean
        return (
            owner is not None
            and getattr(func, "__name__", None) == self.builtin.__name__
            and isinstance(getattr(func, "__self__", None), owner)
        )

    def matches_import(self, module: str, fromlist: Iterable[str]) -> bool:
        if self.module:
            return (
                module == self.module
                or module.startswith(self.module + ".")
                or any(f"{module}.{item}" == self.module for item in fromlist)
            )
        return any(f"{module}.{item}" == self.name for item in fromlist)


def _qualname(code: types.CodeType) -> str:
    """``Class.method`` on Python 3.11+; the bare name on 3.10 (class rules
    then match by name)."""
    return getattr(code, "co_qualname", code.co_name)


def _where_in_notebook(frame: types.FrameType | None) -> str:
    """``line N of f()`` for the innermost frame of notebook code, or ''."""
    while frame is not None:
        if frame.f_globals.get("__name__") == "__main__":
            return f"line {frame.f_lineno} of {frame.f_code.co_name}()"
        frame = frame.f_back
    return ""


class Guard:
    """Shortcut rules for a set of exercises.

    Args:
        rules: exercise label -> forbidden dotted names.
    """

    def __init__(self, rules: dict[str, list[str]]):
        self.rules = {
            label: [_Rule(n) for n in names]
            for label, names in rules.items()
            if names
        }
        self._always = [_Rule(n) for n in ALWAYS_FORBIDDEN]
        self._active: list[
            str
        ] = []  # labels of the student functions now running
        self._violations: list[str] = []
        self._seen: dict[types.CodeType, str | None] = {}
        self._previous_profile: Any = None
        self._importing: str | None = None
        self._original_import = builtins.__import__
        self._lock = threading.RLock()
        # One bound method each, so that what sys.getprofile() and
        # builtins.__import__ hold can be compared with them by identity.
        self._hook = self._profile
        self._import_hook = self._import

    # -- the rules ------------------------------------------------------------
    def _active_rules(self) -> list[tuple[str, _Rule]]:
        rules = [
            (label, r)
            for label in dict.fromkeys(self._active)
            for r in self.rules.get(label, [])
        ]
        return (
            rules + [(self._active[-1], r) for r in self._always]
            if self._active
            else rules
        )

    def _describe(self, label: str) -> str:
        names = ", ".join(r.name for r in self.rules.get(label, []))
        return (
            f"exercise {label} does not allow {names}"
            if names
            else f"exercise {label}"
        )

    def _record(self, label: str, what: str, frame) -> None:
        where = _where_in_notebook(frame)
        message = (
            f"{what}"
            + (f" at {where}" if where else "")
            + f" is a shortcut: {self._describe(label)}; write it yourself"
        )
        if message not in self._violations and len(self._violations) < 3:
            self._violations.append(message)

    def _forbidden_name(self, code: types.CodeType, module: str) -> str | None:
        """The dotted name of forbidden code (cached per code object), or
        None."""
        if code not in self._seen:
            # Module code runs on import, which the import hook judges; this
            # file is the guard.
            hit = (
                code.co_name != "<module>"
                and code.co_filename != __file__
                and any(r.matches_code(code) for r in self._all_rules())
            )
            self._seen[code] = f"{module}.{_qualname(code)}" if hit else None
        return self._seen[code]

    def _profile(self, frame, event, arg):
        if event == "call":
            name = self._forbidden_name(
                frame.f_code, frame.f_globals.get("__name__", "?")
            )
            caller = frame.f_back
            if name is None or (
                caller is not None
                and self._forbidden_name(
                    caller.f_code, caller.f_globals.get("__name__", "?")
                )
            ):
                # allowed code, or forbidden code called from forbidden code
                # (reported once)
                return
            for label, rule in self._active_rules():
                if rule.matches_code(frame.f_code):
                    self._record(label, f"calling {name}", caller)
                    return
        elif event == "c_call":
            if self._forbidden_name(
                frame.f_code, frame.f_globals.get("__name__", "?")
            ):
                return
            for label, rule in self._active_rules():
                if rule.builtin is not None and rule.matches_builtin(arg):
                    self._record(label, f"calling {rule.name}", frame)
                    return

    def _all_rules(self) -> Iterable[_Rule]:
        for rules in self.rules.values():
            yield from rules
        yield from self._always

    # -- student calls --------------------------------------------------------
    def call(self, label: str, fn: Callable, args, kwargs):
        """Run ``fn(*args, **kwargs)`` as exercise ``label``'s student code."""
        with self._lock:
            outermost = not self._active
            if outermost:
                self._violations = []
                self._previous_profile = sys.getprofile()
            self._active.append(label)
            sys.setprofile(self._hook)
        try:
            result = fn(*args, **kwargs)
        except ShortcutError:
            self._leave(outermost)
            raise
        except BaseException as err:
            found = self._leave(outermost)
            if found:
                raise ShortcutError(found) from err
            raise
        found = self._leave(outermost)
        if found:
            raise ShortcutError(found)
        return result

    def _leave(self, outermost: bool) -> str:
        with self._lock:
            if sys.getprofile() is not self._hook and self._active:
                label = self._active[-1]
                self._violations.append(
                    f"the grader's profile hook was switched off while "
                    f"exercise {label}'s code ran"
                )
            self._active.pop()
            if not outermost:
                sys.setprofile(self._hook)
                return ""
            sys.setprofile(self._previous_profile)
            found, self._violations = "; ".join(self._violations), []
            return found

    def wrap(self, label: str, fn: Callable) -> Callable:
        """``fn`` as a function whose calls are checked against ``label``'s
        rules."""
        if getattr(fn, "__seqlib_exercise__", None) == label:
            return fn

        def checked(*args, **kwargs):
            return self.call(label, fn, args, kwargs)

        try:
            functools.update_wrapper(checked, fn)
        except (AttributeError, TypeError):
            pass
        checked.__seqlib_exercise__ = label
        return checked

    # -- imports --------------------------------------------------------------
    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        labels = list(self._active) or (
            [self._importing] if self._importing else []
        )
        if (
            labels
            and level == 0
            and (globals or {}).get("__name__") == "__main__"
        ):
            for label in dict.fromkeys(labels):
                for rule in self.rules.get(label, []):
                    if rule.matches_import(name, fromlist or ()):
                        raise ShortcutError(
                            f"importing {rule.name} is a shortcut: "
                            f"{self._describe(label)}; write it yourself"
                        )
        return self._original_import(name, globals, locals, fromlist, level)

    def importing(self, label: str | None) -> None:
        """Refuse, until called again, notebook imports that ``label``
        forbids."""
        self._importing = label if label in self.rules else None

    def install(self) -> "Guard":
        """Hook ``builtins.__import__`` (the profile hook runs only inside
        student calls)."""
        if builtins.__import__ is not self._import_hook:
            self._original_import = builtins.__import__
            builtins.__import__ = self._import_hook
        return self

    def uninstall(self) -> None:
        """Undo :meth:`install`."""
        if builtins.__import__ is self._import_hook:
            builtins.__import__ = self._original_import
        self._importing = None

    @property
    def intact(self) -> bool:
        """Whether the import hook is still in place."""
        return builtins.__import__ is self._import_hook
