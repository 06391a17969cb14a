"""Who may import whom (docs/architecture.md), checked on every import statement of the tree.

Each ``.py`` file of the six Python packages is parsed with :mod:`ast`; every ``import``,
``from … import`` (top-level or inside a function, relative ones resolved) and
``importlib.import_module("…")`` with a literal name is checked against the rules below. A
failure names the file, the line and the forbidden import.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "jobs", "setup", "backend_server", "master_daemon", "frontend_server")
SERVERS = ("backend_server", "master_daemon", "frontend_server")
#: setup's ground floor: shared by every component (settings, the command-line frame,
#: strict JSON). Everything else in setup/ (``setup.cli``, ``setup.launcher``,
#: ``setup.commands``) is the top floor that wires the components together.
GROUND = ("setup.config", "setup.entry", "setup.strict_json")


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported} ({self.rule})"


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _setup_top(module: str) -> bool:
    """A setup module that is not on the ground floor (``setup`` itself counts as top: it
    would be an import of the whole folder)."""
    return _within(module, "setup") and not any(_within(module, g) for g in GROUND)


def forbidden(importer: str, module: str) -> str | None:
    """Why module ``importer`` may not import ``module`` (a rule in words), or None."""
    if not any(_within(module, p) for p in PACKAGES):
        return None  # the standard library and third-party packages
    if _within(importer, "models"):
        if not _within(module, "models"):
            return "models/ is a library: it imports only models/"
        return None
    if _within(importer, "jobs"):
        if any(_within(module, s) for s in SERVERS):
            return "jobs/ imports no server"
        if _setup_top(module):
            return "jobs/ imports only setup's ground floor (setup.config, setup.entry, " \
                   "setup.strict_json)"
        return None
    if any(_within(importer, g) for g in GROUND) or importer == "setup":
        if any(_within(module, s) for s in SERVERS) or _within(module, "jobs") \
                or _setup_top(module):
            return "setup's ground floor imports only models/ and itself"
        return None
    if _within(importer, "setup.commands"):
        if any(_within(module, s) for s in SERVERS):
            return "setup/commands/ imports no server (servers register their own commands)"
        if _setup_top(module) and not _within(module, "setup.commands"):
            return "setup/commands/ imports no other part of setup's top floor"
        return None
    for server in SERVERS:
        if _within(importer, server):
            other = next((s for s in SERVERS if s != server and _within(module, s)), None)
            if other:
                return f"{server} does not import another server ({other}): they talk HTTP"
            if _setup_top(module):
                return f"{server} imports only setup's ground floor (setup.config, " \
                       f"setup.entry, setup.strict_json)"
            return None
    return None  # setup.cli, setup.launcher: the top floor may wire anything together


def module_name(path: Path) -> str:
    """``models/faces/__init__.py`` → ``models.faces``; ``jobs/local.py`` → ``jobs.local``."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, in order."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:  # ``from setup import entry``: the module setup.entry
                sub = f"{source}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else source))
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) == "import_module")):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def python_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py")
                  if "__pycache__" not in p.parts)


def violations(files: list[Path]) -> list[Violation]:
    out = []
    for path in files:
        importer = module_name(path)
        for line, module in imports(path):
            rule = forbidden(importer, module)
            if rule:
                out.append(Violation(path.relative_to(REPO).as_posix(), line, module, rule))
    return out


def test_every_import_follows_the_rules():
    files = python_files()
    assert {module_name(p).split(".")[0] for p in files} == set(PACKAGES)
    found = violations(files)
    assert not found, "forbidden imports:\n" + "\n".join(map(str, found))


def imported_test_modules(root: Path) -> list[str]:
    """``file:line: module`` for each import, in a file under ``root``/tests, of a test module
    (``test_*.py``): shared helpers and fixtures live in a conftest.py, tests/bench/common.py
    or a package's test kit (``frontend_server/testing.py`` and the like), so each test module
    runs the same alone, in any order and on any pytest-xdist worker."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        for line, module in imports(path):
            if _within(module, "tests") and module.rpartition(".")[2].startswith("test_"):
                found.append(f"{path.relative_to(root).as_posix()}:{line}: {module}")
    return found


def test_no_test_module_imports_another():
    found = imported_test_modules(REPO)
    assert not found, "test modules imported (move what they share to tests/conftest.py or " \
                      "a test kit):\n" + "\n".join(found)


def test_an_import_of_a_test_module_is_found(tmp_path, monkeypatch):
    (tmp_path / "tests" / "browser").mkdir(parents=True)
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "conftest.py").write_text("")
    (tmp_path / "tests" / "test_a.py").write_text("from tests.conftest import REPO\n")
    (tmp_path / "tests" / "browser" / "test_b.py").write_text(
        "import json\n\n\ndef test_x():\n    from tests.test_a import helper\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert imported_test_modules(tmp_path) == ["tests/browser/test_b.py:5: tests.test_a"]


@pytest.mark.parametrize("importer,module,allowed", [
    ("models.generate", "models.images", True),
    ("models.generate", "jobs", False),
    ("models.dataset.pipeline", "setup.config", False),
    ("models.bundle", "backend_server.server", False),
    ("jobs.submit", "setup.entry", True),
    ("jobs.submit", "setup.commands.train", False),
    ("jobs.slurm", "master_daemon.models", False),
    ("jobs.local", "models.runtime", True),
    ("setup.config", "models.precision", True),
    ("setup.entry", "jobs", False),
    ("setup.commands.dataset", "jobs.submit", True),
    ("setup.commands.bundle", "frontend_server.store", False),
    ("master_daemon.app", "jobs.scheduler", True),
    ("master_daemon.app", "frontend_server.store", False),
    ("frontend_server.gallery", "backend_server.facestore", False),
    ("backend_server.cli", "setup.entry", True),
    ("backend_server.cli", "setup.commands.bundle", False),
    ("setup.cli", "master_daemon.cli", True),
    ("frontend_server.app", "flask", True),
])
def test_the_rules(importer, module, allowed):
    assert (forbidden(importer, module) is None) is allowed


def test_a_violation_names_file_line_and_import(tmp_path, monkeypatch):
    """Function-level and relative imports are found too, and reported as file:line."""
    root = tmp_path / "repo"
    (root / "models" / "faces").mkdir(parents=True)
    (root / "jobs").mkdir()
    (root / "jobs" / "__init__.py").write_text("")
    (root / "models" / "__init__.py").write_text("")
    (root / "models" / "faces" / "__init__.py").write_text("from . import x\n")
    (root / "models" / "faces" / "x.py").write_text(
        "import numpy\n\n\ndef f():\n    from jobs import submit\n"
        "    from .. import images\n    import importlib\n"
        "    importlib.import_module('master_daemon.app')\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", root)
    found = [str(v) for v in violations(sorted(root.rglob("*.py")))]
    assert found == [
        "models/faces/x.py:5: imports jobs (models/ is a library: it imports only models/)",
        "models/faces/x.py:8: imports master_daemon.app (models/ is a library: it imports "
        "only models/)"]


#: The modules that read the environment into a Settings: the command-line frame (once per
#: process) and the test daemon's helper; everything else is handed its Settings.
READS_SETTINGS = ("setup.config", "setup.entry", "master_daemon.testing")


def settings_rereads(path: Path) -> list[str]:
    """``file:line: what`` for each ``load_settings()`` call outside :data:`READS_SETTINGS`
    and each ``getattr(…settings, "name", default)``: a setting read again or its default
    written a second time."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(REPO).as_posix()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name == "load_settings" and module_name(path) not in READS_SETTINGS:
            found.append(f"{where}:{node.lineno}: load_settings() (take the caller's Settings)")
        elif (name == "getattr" and len(node.args) == 3
              and ast.unparse(node.args[0]).rpartition(".")[2].endswith("settings")):
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)} (a second default: "
                         f"read the Settings field)")
    return found


def test_settings_are_passed_in_never_reread():
    """Each default lives in setup.config.Settings only; components take the Settings their
    caller built (docs/configuration.md)."""
    found = [hit for path in python_files() for hit in settings_rereads(path)]
    assert not found, "settings re-read or defaults restated:\n" + "\n".join(found)


def test_a_reread_is_found(tmp_path, monkeypatch):
    (tmp_path / "jobs").mkdir()
    source = tmp_path / "jobs" / "x.py"
    source.write_text("def f(settings):\n    from setup.config import load_settings\n"
                      "    return getattr(settings, 'port', 8700), load_settings().home\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert settings_rereads(source) == [
        "jobs/x.py:3: getattr(settings, 'port', 8700) (a second default: read the Settings "
        "field)",
        "jobs/x.py:3: load_settings() (take the caller's Settings)"]
