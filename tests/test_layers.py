"""The package's layers, read from the source's imports (every import, a function's too):
the stages sit below the pipeline and the registry that reach them, the models know no
task, and conversion and measurement know no stage. A circle among these would make a
stage's change ripple upwards and back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgetransfer"

# what the command line, the API and a recipe run are made of, above every stage
ORCHESTRATION = ("edgetransfer.pipeline", "edgetransfer.registry", "edgetransfer.recipe",
                 "edgetransfer.cli", "edgetransfer.api", "edgetransfer.report")

RULES = [  # (folder, what no module in it imports)
    ("stages", ORCHESTRATION),
    ("modeling", ("edgetransfer.tasks", "edgetransfer.stages")),
    ("convert", ("edgetransfer.stages",)),
    ("measure", ("edgetransfer.stages",)),
]


def imports(file: Path) -> set[str]:
    """Every module `file` imports, absolute (`from .. import pipeline` in a stage is
    edgetransfer.pipeline)."""
    package = list(file.relative_to(PACKAGE.parent).parts[:-1])  # (an __init__'s: its own)
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # (`from .. import x`)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("folder, forbidden", RULES, ids=[r[0] for r in RULES])
def test_a_layer_imports_nothing_above_it(folder, forbidden):
    crossings = [f"{file.relative_to(PACKAGE.parent)} imports {name}"
                 for file in sorted((PACKAGE / folder).rglob("*.py"))
                 for name in sorted(imports(file))
                 if any(_under(name, f) for f in forbidden)]
    assert crossings == []


def test_no_stage_imports_another():
    """Stages meet only through the pipeline's typed references (records/references.py)."""
    folder = PACKAGE / "stages"
    crossings = [f"{file.name} imports {name}" for file in sorted(folder.glob("*.py"))
                 for name in sorted(imports(file))
                 if _under(name, "edgetransfer.stages") and name not in (
                     "edgetransfer.stages", f"edgetransfer.stages.{file.stem}")]
    assert crossings == []


def test_the_import_reader_sees_relative_and_local_imports():
    """(the rules above are only as good as this reader)"""
    source = PACKAGE / "stages" / "export.py"
    found = imports(source)
    assert "edgetransfer.errors" in found  # `from ..errors import ...`
    assert any(_under(n, "edgetransfer.convert") for n in found)
    assert "edgetransfer.pipeline" in imports(PACKAGE / "cli" / "main.py")  # in a function
