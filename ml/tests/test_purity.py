"""ml/ is a library that knows nothing of the portal: this test fails when any file
under it imports django, rest_framework, celery or a portal app."""

import ast
from pathlib import Path

import pytest

ML_DIR = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "django",
    "rest_framework",
    "celery",
    "kombu",
    "stroke_portal",
    "accounts",
    "diagnosis",
    "feedback",
    "reports",
}


def _dynamic_import(node: ast.AST) -> str | None:
    """The module that import_module("x") or __import__("x") names, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    name = getattr(node.func, "attr", getattr(node.func, "id", ""))
    first = node.args[0]
    if name in {"import_module", "__import__"} and isinstance(first, ast.Constant):
        return str(first.value)
    return None


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (module := _dynamic_import(node)) is not None:
            roots.add(module.split(".")[0])
    return roots


def test_imported_roots_sees_every_import_form():
    source = (
        "import django.db\nfrom celery import shared_task\n"
        "import importlib\nimportlib.import_module('accounts.models')\n"
        "def f():\n    from rest_framework import views\n"
    )
    assert {"django", "celery", "accounts", "rest_framework"} <= imported_roots(source)


@pytest.mark.parametrize(
    "path", sorted(ML_DIR.rglob("*.py")), ids=lambda p: str(p.relative_to(ML_DIR))
)
def test_ml_file_imports_nothing_from_the_portal(path):
    bad = imported_roots(path.read_text(encoding="utf-8")) & FORBIDDEN
    assert not bad, f"{path} imports {sorted(bad)}; ml/ must stay a pure library"
