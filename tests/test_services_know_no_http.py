"""Services take the facts they need and an AuditContext, never an HTTP request:
the same write then serves a page, the API, a worker and a command alike."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICE_MODULES = sorted(
    [
        ROOT / "accounts/services.py",
        ROOT / "reports/services.py",
        *(ROOT / "diagnosis/services").glob("*.py"),
        *(ROOT / "feedback/services").glob("*.py"),
    ]
)


@pytest.mark.parametrize(
    "module", SERVICE_MODULES, ids=lambda p: str(p.relative_to(ROOT))
)
def test_services_know_nothing_of_http(module):
    tree = ast.parse(module.read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not [
        m for m in imported if m.startswith(("django.http", "rest_framework.request"))
    ]
    parameters = {
        arg.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for arg in [*node.args.args, *node.args.kwonlyargs]
    }
    assert "request" not in parameters
