"""The package table of DESIGN.md and docs/architecture.md, enforced: who may import whom.

Every import statement of every module counts, including imports inside functions, relative
imports (resolved against the module's package) and ``TYPE_CHECKING`` blocks: a domain package
that reaches into the gateway, even lazily, is a boundary violation.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("gateway", "engine", "watermark", "policy", "audit", "migrations")

# package -> the first-party modules it may import besides its own (a prefix matches submodules)
ALLOWED: dict[str, tuple[str, ...]] = {
    "engine": (),
    "watermark": (),
    "audit": (),
    # policy may use audit's event types, nothing else of audit
    "policy": ("audit.events",),
    # migrations build tables from the domains' column types and read their metadata, and the
    # gateway's own tables: replicas and request leases, rate-limit windows
    "migrations": (
        "audit.models",
        "policy.db",
        "policy.blocklist.models",
        "policy.consent.models",
        "gateway.replicas.models",
        "gateway.rate_limits.models",
    ),
    "gateway": FIRST_PARTY,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, tuple[str, ...]]]:
    """(line, names) of every imported thing in the file: ``import a.b`` names ``a.b``;
    ``from a import b`` names both ``a`` and ``a.b``, since ``b`` may be a module or an attribute."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, (alias.name,)) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, target] if target else base)
            found.extend((node.lineno, (target, f"{target}.{alias.name}")) for alias in node.names)
    return found


def _is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def boundary_violations(package: str) -> list[str]:
    allowed = (package, *ALLOWED[package])
    violations = []
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for line, names in _imports(path):
            if names[0].split(".")[0] not in FIRST_PARTY:
                continue
            if not any(_is_within(name, prefix) for name in names for prefix in allowed):
                violations.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {names[-1]}")
    return violations


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_table_allows(package: str) -> None:
    assert boundary_violations(package) == []


def test_a_forbidden_import_is_found(tmp_path, monkeypatch) -> None:
    """The checker itself: a domain module that imports the gateway lazily is caught."""
    fake_root = tmp_path
    (fake_root / "watermark").mkdir()
    (fake_root / "watermark" / "__init__.py").write_text("")
    (fake_root / "watermark" / "leak.py").write_text(
        "def f():\n    from gateway.settings import Settings\n    from ..policy import errors\n    return Settings\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", fake_root)
    assert boundary_violations("watermark") == [
        "watermark/leak.py:2 imports gateway.settings.Settings",
        "watermark/leak.py:3 imports policy.errors",
    ]


def test_policy_may_use_audit_event_types_only(tmp_path, monkeypatch) -> None:
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "uses_audit.py").write_text(
        "from audit.events import Action\nfrom audit import events\nfrom audit.store import append_event\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    assert boundary_violations("policy") == ["policy/uses_audit.py:3 imports audit.store.append_event"]
