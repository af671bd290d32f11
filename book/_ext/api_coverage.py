"""Check that the API reference documents every public name of seqlib.

At the end of reading (``env-check-consistency``, when the Python domain knows
every object that any page documented, also in an incremental build), this
extension imports each module of the package named by ``api_coverage_package``
(default ``seqlib``) and compares its public functions and classes with the
objects documented by ``automodule``. Public means: no leading underscore,
defined in that module (``__module__`` is the module), not imported. Each
module with a missing name gives one Sphinx warning naming them, so a build
with ``-W`` fails until the name is documented (add the module's page under
``book/api/`` and its entry in ``_toc.yml``, or write the missing docstring).

A module that cannot be imported is reported too: autodoc could not document
it either.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

from sphinx.util import logging

logger = logging.getLogger(__name__)


def public_names(module: ModuleType) -> list[str]:
    """The public functions and classes defined in ``module``, in order.

    Args:
        module: an imported module.

    Returns:
        Their dotted names, ``module.__name__ + "." + name``.
    """
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue  # imported from elsewhere
        names.append(f"{module.__name__}.{name}")
    return names


def missing_names(module: ModuleType, documented: set[str]) -> list[str]:
    """The public names of ``module`` that are not in ``documented``.

    Args:
        module: an imported module.
        documented: the dotted names the Python domain knows (objects and
            modules).

    Returns:
        The missing dotted names, in the module's order.
    """
    return [name for name in public_names(module) if name not in documented]


def package_modules(package: str) -> list[str]:
    """``package`` and the dotted names of all its modules and subpackages."""
    root = importlib.import_module(package)
    names = [package]
    if hasattr(root, "__path__"):
        names += [
            info.name
            for info in pkgutil.walk_packages(root.__path__, f"{package}.")
        ]
    return sorted(names)


def _check(app, env) -> None:
    package = app.config.api_coverage_package
    if not package:
        return
    domain = env.get_domain("py")
    documented = set(domain.objects) | set(domain.modules)
    for modname in package_modules(package):
        try:
            module = importlib.import_module(modname)
        except Exception as err:  # any import failure
            logger.warning(
                "api_coverage: cannot import %s (%s: %s)",
                modname,
                type(err).__name__,
                err,
                type="api_coverage",
            )
            continue
        missing = missing_names(module, documented)
        if modname not in documented:
            logger.warning(
                "api_coverage: module %s has no API page (no automodule "
                "documents it); add book/api/... and its _toc.yml entry",
                modname,
                type="api_coverage",
            )
        elif missing:
            logger.warning(
                "api_coverage: %s: not in the API reference: %s",
                modname,
                ", ".join(name.rsplit(".", 1)[1] for name in missing),
                type="api_coverage",
            )


def setup(app) -> dict:
    app.add_config_value("api_coverage_package", "seqlib", "env")
    app.connect("env-check-consistency", _check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
