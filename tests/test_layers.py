"""The import layers of docs/DESIGN.md, read from the source with ``ast`` (nothing is imported).

Every import statement counts, including those inside functions: the code imports lazily to keep
``genreflow --help`` fast, and a cycle through lazy imports still couples the modules involved.

Edges of the module graph: a module imports the module its import statement names. ``from X import Y``
names ``X.Y`` when that is a module, else ``X``; a package is its ``__init__.py``; ``a.b.c`` where only
``a.b`` exists (an attribute) names ``a.b``. Python's implicit step of running a package's
``__init__`` before one of its submodules is not an edge: otherwise every package whose
``__init__`` re-exports its submodules would be a cycle. A submodule that imports a name from its own
package's ``__init__`` (``from . import name``, ``from genreflow.pipeline.store import X`` inside
``store/``) is an edge like any other: that is a real cycle, which only works while the ``__init__``
happens to bind the name before importing the submodule. Imports under ``if TYPE_CHECKING:`` never
run, so they are left out of the cycle graph; the layer rules still count them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {_module_name(path): path for path in sorted((SRC / "genreflow").rglob("*.py"))}


def _existing(name: str) -> str:
    """The genreflow module that ``name`` lands in (an attribute's module); other names unchanged."""
    if name.split(".")[0] != "genreflow":
        return name
    while name not in FILES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str) -> list[tuple[int, str, str, bool]]:
    """``(line, statement, imported module, runs)`` for every import in ``module``, at any depth;
    ``runs`` is False under ``if TYPE_CHECKING:``."""
    path = FILES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found = []
    for node in ast.walk(tree):
        runs = id(node) not in typing_only
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {alias.name}", _existing(alias.name), runs) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names: dict[str, list[str]] = {}  # imported module -> the names taken from it
            for alias in node.names:
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in FILES else base
                names.setdefault(_existing(target), []).append(alias.name)
            statement = f"from {'.' * node.level}{node.module or ''} import "
            found += [(node.lineno, statement + ", ".join(n), target, runs) for target, n in names.items()]
    return sorted(found)


IMPORTS = {module: _imports(module) for module in FILES}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _where(module: str, line: int, statement: str, target: str, runs: bool = True) -> str:
    return f"{FILES[module].relative_to(SRC.parent)}:{line}: {statement}  ({target})"


def test_module_graph_has_no_cycle() -> None:
    graph = {m: {t for _, _, t, runs in IMPORTS[m] if runs and t in FILES and t != m} for m in FILES}
    report = []
    for cycle in _cycles(graph):  # the modules of each cycle, then the imports that close it
        report.append(f"cycle of {len(cycle)} modules: {', '.join(cycle)}")
        report += [f"  {_where(m, *i)}" for m in cycle for i in IMPORTS[m] if i[3] and i[2] in cycle and i[2] != m]
    assert not report, "import cycles:\n" + "\n".join(report)


UPPER = ("genreflow.flows", "genreflow.cli", "genreflow.bench", "genreflow.console")
RULES = {
    "pipeline-not-above": (("genreflow.pipeline",), UPPER),
    "tasks-not-above": (("genreflow.tasks",), UPPER),
    "pipeline-no-orchestration": (
        ("genreflow.pipeline",),
        ("prefect", "prefect_dask", "dask", "distributed", "genreflow.infra", "genreflow.tasks"),
    ),
    "flows-not-cli-or-bench": (("genreflow.flows",), ("genreflow.cli", "genreflow.bench")),
    "bench-not-cli": (("genreflow.bench",), ("genreflow.cli",)),
}


@pytest.mark.parametrize(("layer", "forbidden"), RULES.values(), ids=RULES.keys())
def test_layer_imports(layer: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    offences = [
        _where(module, *entry)
        for module in FILES
        if _within(module, layer)
        for entry in IMPORTS[module]
        if _within(entry[2], forbidden)
    ]
    assert not offences, f"{', '.join(layer)} must not import {', '.join(forbidden)}:\n" + "\n".join(offences)


HEAVY = ("numpy", "pandas", "prefect", "tensorflow", "keras", "dask")
HELP = f"""
import json, sys
from genreflow.cli import build_parser, main
print(build_parser().format_help())
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", HELP], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert "usage: genreflow" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [], "--help imported heavy modules"
    assert seconds < 1.0, f"building the parser and its help took {seconds:.2f} s"
