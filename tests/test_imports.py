"""Who may import whom (docs/architecture.md), checked on the source, not by running it.

Every ``import`` of every module is read with :mod:`ast`; an import inside a function is
*lazy* (it runs only when that function does), one anywhere else is at module level. The rules:

* ``spec`` imports only the standard library and numpy;
* ``accel`` (the contract) imports only the standard library, numpy and ``spec``;
* ``hw`` and ``sim`` never import torch or ``training``; ``hw`` never imports ``host`` or
  ``sim``;
* ``host`` never imports torch, and imports amaranth, cocotb, ``hw`` and ``sim`` only lazily
  (its Verilator backend; the board image has none of them);
* nothing outside ``tests/`` and ``training/`` imports ``training``.
"""

import ast
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spec", "accel", "hw", "sim", "host", "training", "bench")
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
    if package == "spec":
        return name in STDLIB or name == "numpy"
    if package == "accel":
        return name in STDLIB or name in ("numpy", "spec")
    if package in ("hw", "sim") and name == "torch":
        return False
    if package == "hw" and name in ("host", "sim"):
        return False
    if package == "host":
        if name == "torch":
            return False
        if name in ("amaranth", "cocotb", "hw", "sim"):
            return lazy
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


@pytest.mark.parametrize("package, line, expect", [
    ("spec", "import torch", "spec/model.py:1: spec imports torch at module level"),
    ("hw", "from host import errors", "hw/top.py:1: hw imports host at module level"),
    ("host", "import amaranth", "host/run.py:1: host imports amaranth at module level"),
    ("sim", "import training.gam", "sim/top.py:1: sim imports training at module level"),
    ("accel", "import amaranth", "accel/regmap.py:1: accel imports amaranth at module level"),
])
def test_a_forbidden_import_fails(tmp_path, package, line, expect):
    """The check catches a forbidden import added to a copy of the tree."""
    for p in PACKAGES:
        shutil.copytree(ROOT / p, tmp_path / p, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / expect.split(":")[0]
    target.write_text(line + "\n" + target.read_text())
    assert expect in violations(tmp_path)


def test_a_lazy_host_import_is_allowed(tmp_path):
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "x.py").write_text("def f():\n    import amaranth\n")
    assert [name for name, lazy, _ in imports(tmp_path / "host" / "x.py")] == ["amaranth"]
    assert allowed("host", "amaranth", lazy=True) and not allowed("host", "amaranth", lazy=False)
