"""Emit each page script once.

sphinx-thebe and sphinx-togglebutton add inline configuration scripts that
Sphinx 7.4 lists twice (its registry copies a script's ``filename`` as ``''``
where the original had ``None``, so the two entries no longer compare equal).
The second copy of ``const THEBE_JS_URL = …`` then fails with "Identifier has
already been declared" on every page. This drops exact repeats, keeping the
first, before the page is written.
"""

from __future__ import annotations


def _key(script) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (
        str(filename),
        tuple(sorted((k, str(v)) for k, v in attributes.items())),
    )


def unique_scripts(scripts: list) -> list:
    """The scripts in order, each (file name, attributes) pair once."""
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    return unique


def _on_page(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = unique_scripts(context["script_files"])


def setup(app):
    app.connect("html-page-context", _on_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
