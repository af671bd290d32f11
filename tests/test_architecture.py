"""seqlib's layering (CONTRIBUTING.md): a module imports only from its own layer or below, without cycles."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "seqlib"
FOUNDATIONS = {
    "shapes",
    "profiles",
    "claims",
    "layers",
    "attention",
    "scores",
    "positional",
    "boxes",
    "decoding",
    "train",
    "metrics",
    "matcher",
    "data",
}
AROUND = {"viz", "viz_seq", "exercises"}
LAYER = {**{m: 1 for m in FOUNDATIONS}, **{m: 3 for m in AROUND}}
# Module size in statements, not lines: line counts depend on the formatter
# (ruff at 79 columns makes modules about 1.5x longer than they were at 110),
# statements do not. 250 is what about 420 lines held at 110 columns.
MAX_STATEMENTS = 250


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = (
            rel.parts[0]
            if rel.parts[0] in {"data", "exercises"}
            else ".".join(rel.parts)
        )
        yield name, path


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("seqlib")
        ):
            parts = node.module.split(".")
            if len(parts) == 1:  # from seqlib import x, y
                found |= {alias.name for alias in node.names}
            else:
                found.add(parts[1])
        elif isinstance(node, ast.Import):
            found |= {
                a.name.split(".")[1]
                for a in node.names
                if a.name.startswith("seqlib.")
            }
    return found


GRAPH = {}
for _name, _path in _modules():
    if _name != "__init__":
        GRAPH.setdefault(_name, set()).update(_imports(_path) - {_name})


def _layer(name: str) -> int:
    return LAYER.get(name, 2)  # everything else is an architecture


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_the_layers(module):
    upward = sorted(m for m in GRAPH[module] if _layer(m) > _layer(module))
    assert not upward, (
        f"seqlib.{module} (layer {_layer(module)}) imports higher layers: {upward}"
    )


def test_no_import_cycles():
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in GRAPH.get(node, ()):
            if state.get(nxt) == "open":
                pytest.fail(
                    f"import cycle: {' -> '.join(stack + [node, nxt])}"
                )
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in GRAPH:
        if node not in state:
            visit(node, [])


def _statements(path):
    tree = ast.parse(path.read_text())
    return sum(isinstance(node, ast.stmt) for node in ast.walk(tree))


def test_no_module_is_over_about_250_statements():
    long = {
        str(p.relative_to(ROOT)): n
        for _, p in _modules()
        if (n := _statements(p)) > MAX_STATEMENTS
    }
    assert not long, f"split these modules along their concepts: {long}"
