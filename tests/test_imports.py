"""Who may import whom (docs/architecture.md), checked on the source, not by running it.

Every ``import`` of every module is read with :mod:`ast`; an import inside a function is
*lazy* (it runs only when that function does), one anywhere else is at module level. The rules:

* ``spec`` imports only the standard library and numpy;
* ``accel`` (the contract) imports only the standard library, numpy and ``spec``;
* ``hw`` and ``sim`` never import torch or ``training``; ``hw`` never imports ``host`` or
  ``sim``;
* ``host`` never imports torch, amaranth, cocotb, ``hw`` or ``sim``, not even lazily (the board
  image has none of them; ``sim`` registers the Verilator backend, host.backends);
* ``training`` never imports ``hw``, ``sim`` or ``host`` (board figures are :mod:`accel.boards`);
* nothing outside ``tests/`` and ``training/`` imports ``training``;
* nothing outside ``tests/`` imports ``tests`` (a wheel has none; ``sim``'s own tests are
  ``tests/sim``).

And the import graph of the tree's modules (lazy imports included: they run) has no circle.
"""

import ast
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spec", "accel", "hw", "sim", "host", "training", "bench")
#: Circles known and left for a named reason; the test fails when one changes or goes, so the
#: entry goes with it.
KNOWN_CIRCLES = []
STDLIB = set(sys.stdlib_module_names)


def imports(path: Path):
    """``(top-level module name, lazy, line)`` of every absolute import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name.split(".")[0], lazy, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], lazy, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return found


def allowed(package: str, name: str, lazy: bool) -> bool:
    """Whether a module of ``package`` may import top-level module ``name`` (lazily or not)."""
    if name == package or name == "__future__":
        return True
    if name == "training":
        return package == "training"
    if name == "tests":
        return False
    if package == "spec":
        return name in STDLIB or name == "numpy"
    if package == "accel":
        return name in STDLIB or name in ("numpy", "spec")
    if package in ("hw", "sim") and name == "torch":
        return False
    if package == "hw" and name in ("host", "sim"):
        return False
    if package == "host" and name in ("torch", "amaranth", "cocotb", "hw", "sim"):
        return False
    if package == "training" and name in ("hw", "sim", "host"):
        return False
    return True


def violations(root: Path) -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for name, lazy, line in imports(path):
                if not allowed(package, name, lazy):
                    where = "inside a function" if lazy else "at module level"
                    out.append(f"{path.relative_to(root)}:{line}: {package} imports {name} {where}")
    return out


def test_import_rules_hold():
    assert violations(ROOT) == []


def _module(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the tree's modules it imports (relative imports resolved; ``from p import m``
    is module ``p.m`` where it is one, else ``p``)."""
    paths = {_module(root, p): p for pkg in ("gamir", *PACKAGES) for p in (root / pkg).rglob("*.py")}

    def known(name):
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for mod, path in paths.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + [base] if base else up)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base
                         for a in node.names]
            else:
                continue
            out.update(n for n in map(known, names) if n and n != mod)
        graph[mod] = out
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted."""
    index, low, stack, found = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_import_graph_has_no_circle():
    assert circles(import_graph(ROOT)) == KNOWN_CIRCLES


def test_a_circle_is_found(tmp_path):
    """A lazy import that closes a loop (module a imports b, b imports a inside a function)."""
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "a.py").write_text("from . import b\n")
    (tmp_path / "spec" / "b.py").write_text("def f():\n    from .a import x\n")
    (tmp_path / "spec" / "c.py").write_text("import spec.a\n")
    for pkg in ("gamir", *PACKAGES):
        (tmp_path / pkg).mkdir(exist_ok=True)
    assert circles(import_graph(tmp_path)) == [["spec.a", "spec.b"]]


@pytest.mark.parametrize("package, line, expect", [
    ("spec", "import torch", "spec/model.py:1: spec imports torch at module level"),
    ("hw", "from host import errors", "hw/top.py:1: hw imports host at module level"),
    ("host", "import amaranth", "host/run.py:1: host imports amaranth at module level"),
    ("host", "def f():\n    import sim.runner", "host/run.py:2: host imports sim inside a function"),
    ("sim", "import training.gam", "sim/top.py:1: sim imports training at module level"),
    ("sim", "def f():\n    from tests.sim import test_top",
     "sim/runner.py:2: sim imports tests inside a function"),
    ("accel", "import amaranth", "accel/regmap.py:1: accel imports amaranth at module level"),
    ("training", "def f():\n    from hw import top",
     "training/search.py:2: training imports hw inside a function"),
])
def test_a_forbidden_import_fails(tmp_path, package, line, expect):
    """The check catches a forbidden import added to a copy of its package."""
    shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / expect.split(":")[0]
    target.write_text(line + "\n" + target.read_text())
    assert expect in violations(tmp_path)


def test_a_lazy_import_is_read_as_lazy(tmp_path):
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "x.py").write_text("def f():\n    import torch\n")
    assert imports(tmp_path / "hw" / "x.py") == [("torch", True, 2)]
