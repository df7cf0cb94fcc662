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


def _is_dynamic_import(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    name = getattr(node.func, "attr", getattr(node.func, "id", ""))
    return name in {"import_module", "__import__"} and isinstance(
        node.args[0], ast.Constant
    )


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif _is_dynamic_import(node):
            roots.add(str(node.args[0].value).split(".")[0])
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
