"""Dependencies between the apps run one way: accounts <- diagnosis <- feedback,
reports; ml/ is a library that knows no app. Diagnosis tells the apps built on it
what happened through its signals (diagnosis.signals) instead of calling them.
Inside an app there is no circle between services and tasks: tasks call services,
and services send tasks through the app's queue module, the one that imports them.

Every module of each app (its tests aside: they may build fixtures from any app) is
parsed with `ast`, lazy imports inside functions included."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("accounts", "diagnosis", "feedback", "reports", "dicomnode")

#: What each package must not import.
FORBIDDEN = {
    "accounts": {"diagnosis", "feedback", "reports", "dicomnode"},
    "diagnosis": {"feedback", "reports", "dicomnode"},
    "reports": {"feedback", "dicomnode"},
    "feedback": {"dicomnode"},
    # dicomnode sits on top: it sends reports' PDFs and images back to the PACS.
    "dicomnode": set(),
    "ml": {"stroke_portal", *APPS},
}

#: The one module of each app that imports its tasks.
TASK_SENDERS = {
    app: f"{app}.queue" for app in ("diagnosis", "feedback", "reports", "dicomnode")
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, *, module: str, is_package: bool) -> set[str]:
    """Every name `source` imports, absolute: "feedback.selectors" for `import
    feedback.selectors` or `from feedback import selectors`, and
    "feedback.selectors.case_list_for_study" for `from feedback.selectors import
    case_list_for_study`; relative imports resolved against `module`, and
    import_module("x") read as an import of "x"."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            names.update(f"{origin}.{alias.name}" for alias in node.names)
        elif (name := _dynamic_import(node)) is not None:
            names.add(name)
    return names


def _dynamic_import(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call) or not node.args:
        return None
    function = getattr(node.func, "attr", getattr(node.func, "id", ""))
    first = node.args[0]
    if function in {"import_module", "__import__"} and isinstance(first, ast.Constant):
        return str(first.value)
    return None


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        if package in APPS and "tests" in path.relative_to(ROOT).parts:
            continue
        name = module_name(path)
        source = path.read_text(encoding="utf-8")
        is_package = path.name == "__init__.py"
        yield name, imported_names(source, module=name, is_package=is_package)


IMPORTS = {name: found for package in FORBIDDEN for name, found in _modules(package)}


def test_imported_names_resolves_every_import_form():
    source = (
        "import reports.tasks\n"
        "from .. import queue\n"
        "from ..models import Study\n"
        "from .common import scrub_paths\n"
        "import_module('accounts.models')\n"
        "def f():\n    from feedback.selectors import case_list_for_study\n"
    )
    names = imported_names(
        source, module="diagnosis.services.processing", is_package=False
    )
    assert names == {
        "reports.tasks",
        "diagnosis.queue",
        "diagnosis.models.Study",
        "diagnosis.services.common.scrub_paths",
        "accounts.models",
        "feedback.selectors.case_list_for_study",
    }
    package = imported_names(
        "from .upload import study_create", module="diagnosis.services", is_package=True
    )
    assert package == {"diagnosis.services.upload.study_create"}


def test_every_module_of_each_app_is_parsed_but_their_tests():
    assert {"accounts.models", "diagnosis.services.review", "ml.io.loader"} <= set(
        IMPORTS
    )
    assert "ml.tests.test_purity" in IMPORTS
    assert "reports.tests.conftest" not in IMPORTS


def test_apps_import_only_in_the_direction_of_their_dependencies():
    against = {
        (module, name)
        for module, found in IMPORTS.items()
        for name in found
        if name.split(".")[0] in FORBIDDEN[module.split(".")[0]]
    }
    assert not against, (
        "These imports run against accounts <- diagnosis <- feedback, reports "
        "(diagnosis announces events in diagnosis.signals and asks the apps above "
        "it through the hooks they register in diagnosis.extensions):\n"
        + "\n".join(f"{m} imports {n}" for m, n in sorted(against))
    )


@pytest.mark.parametrize("app", sorted(TASK_SENDERS))
def test_only_the_queue_module_imports_the_apps_tasks(app):
    tasks = f"{app}.tasks"
    importers = {
        module
        for module, found in IMPORTS.items()
        if module != tasks
        and any(name == tasks or name.startswith(f"{tasks}.") for name in found)
    }
    others = importers - {TASK_SENDERS[app]}
    assert not others, (
        f"{sorted(others)} import {tasks}, which imports the services: send tasks "
        f"through {TASK_SENDERS[app]} instead"
    )
