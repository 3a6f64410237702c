"""The import graph, read from the code's own imports (Python's ast): no cycle, and no import from a lower layer to
a higher one. The layers are declared once, here (and drawn in docs/ARCHITECTURE.md); a new package or top-level
module must be placed in one before this test passes.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "tamrl_coupler"

# lowest first; a module may import from its own layer or any lower one, never from a higher one
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "constants"),  # the ground: what every part may raise and the fixed numbers
    ("vocabulary", "atomicfile", "ncfiles", "devices", "parallel", "communicator",  # every quantity; atomic writes;
     "sealed", "signals"),  # NetCDF at its lowest level; where torch runs; the ranks' agreement that nobody failed;
    # MPI or one process; whole-file SHA-256 seals; stop signals as requests the agreement carries
    ("physics", "regrid"),  # the relations the product enforces; grids, weights and their application
    ("settings",),  # every config schema (run, train, cv, model), typed, validated with the physics
    ("data",),  # flux-tower datasets -> one internal form
    ("kernels",),  # how the model is evaluated fast: batched and fused kernels, plans, workspaces, CUDA graphs
    ("model", "baselines"),  # the science: TAM-RL networks, ensemble, checkpoints, calibration; the baselines
    ("io", "training"),  # the product's files; training, CV and metrics
    ("component", "products"),  # the coupling component; what is computed from a run's files
    ("host", "bridge"),  # the hosts: the offline host and the Fortran bridge's Python side
    ("commands", "cli", "__main__"),  # the command line
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, modules: set[str]) -> str:
    """``tamrl_coupler.a.b.c`` -> the longest prefix that is a module of the package."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its code (functions included; annotations-only
    imports under ``if TYPE_CHECKING:`` excluded)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if _type_checking_only(node) for n in ast.walk(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]  # a submodule, else resolved to base
        for n in names:
            if n.startswith("tamrl_coupler"):
                target = _resolve(n, modules)
                if target and target != module:
                    out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {m: _imports(p, m, modules) for m, p in files.items()}


def _part(module: str) -> str:
    """The package or top-level module of ``tamrl_coupler`` that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    part = _part(module)
    for i, layer in enumerate(LAYERS):
        if part in layer:
            return i
    if part == "__init__":
        return -1
    raise AssertionError(f"{module}: part {part!r} is in no layer of tests/test_architecture.py LAYERS")


def test_every_part_sits_in_one_layer():
    declared = [p for layer in LAYERS for p in layer]
    assert len(declared) == len(set(declared))
    parts = {_part(m) for m in _graph()} - {"__init__"}
    assert parts == set(declared), (sorted(parts - set(declared)), sorted(set(declared) - parts))


def test_no_import_runs_up_a_layer():
    upward = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
              for a, targets in _graph().items() for b in sorted(targets) if _layer(b) > _layer(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    """No two modules import each other, directly or through others (Tarjan's strongly connected components);
    and two parts of one layer never import each other both ways."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles
    parts: dict[str, set[str]] = {}
    for a, targets in graph.items():
        for b in targets:
            if _part(a) != _part(b):
                parts.setdefault(_part(a), set()).add(_part(b))
    both_ways = sorted({tuple(sorted((a, b))) for a, bs in parts.items() for b in bs if a in parts.get(b, set())})
    assert not both_ways, both_ways


MAX_MODEL_LINES = 350


def test_no_model_file_grows_past_its_size():
    """The model package stays in small modules, one job each (issue 21: the ensemble had become a 518-line class
    of five jobs); a file that needs more lines is a file with two responsibilities."""
    long = {str(p.relative_to(REPO)): n for p in sorted((PACKAGE / "model").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_MODEL_LINES}
    assert not long, f"files over {MAX_MODEL_LINES} lines in tamrl_coupler/model/: {long}"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The test can fail: a low module importing a high one is reported."""
    fake = tmp_path / "tamrl_coupler"
    (fake / "physics").mkdir(parents=True)
    (fake / "component").mkdir()
    for p in (fake / "__init__.py", fake / "physics" / "__init__.py", fake / "component" / "__init__.py",
              fake / "component" / "component.py"):
        p.write_text("")
    (fake / "physics" / "units.py").write_text("def f():\n    from tamrl_coupler.component.component import X\n")
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "PACKAGE", fake)
    monkeypatch.setattr(this, "REPO", tmp_path)
    graph = _graph()
    assert graph["tamrl_coupler.physics.units"] == {"tamrl_coupler.component.component"}
    assert _layer("tamrl_coupler.component.component") > _layer("tamrl_coupler.physics.units")
