"""No module imports a ``_private`` module or name of another package.

A leading underscore marks a module or name private to its package: ``dali_gridaug._validate``
may be imported anywhere inside ``dali_gridaug``, ``dali_gridaug.augment.graph._kernel`` only
inside ``dali_gridaug.augment``. import-linter's contracts (``pyproject.toml``, ``lint-imports``)
see modules, not names, so this rule is checked here, on the source of the package and of the
tests (the tests are another package). The layers and the import circles are
``lint-imports``'s.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_package(root: Path, module: str) -> bool:
    return (root.joinpath(*module.split(".")) / "__init__.py").is_file()


def private_imports(root: Path, folder: str, checked: str = "dali_gridaug") -> list[str]:
    """``path:line: importer imports private X of package P`` for every import in the
    modules under ``root/folder`` of a ``_private`` module or name of ``checked`` whose
    package ``P`` does not hold the importer.
    """
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if parts[-1] == "__init__" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [(node.module, a.name) for a in node.names]
            else:
                continue
            for target, name in targets:
                if target != checked and not target.startswith(checked + "."):
                    continue
                steps = target.split(".")
                owners = [
                    (".".join(steps[:i]), ".".join(steps[: i + 1]))
                    for i, step in enumerate(steps)
                    if _private(step)
                ]
                if name is not None and _private(name):
                    owner = target if _is_package(root, target) else target.rpartition(".")[0]
                    owners.append((owner, f"{target}.{name}"))
                for owner, what in owners:
                    if package != owner and not package.startswith(owner + "."):
                        found.append(
                            f"{path.relative_to(root)}:{node.lineno}: {module} imports "
                            f"private {what} of package {owner}"
                        )
    return found


def test_no_private_module_or_name_is_imported_from_another_package() -> None:
    found = private_imports(REPO, "dali_gridaug") + private_imports(REPO, "tests")
    assert not found, "\n".join(found)


def test_the_check_names_a_planted_private_import(tmp_path: Path) -> None:
    for pkg in ("dali_gridaug", "dali_gridaug/augment", "dali_gridaug/saliency", "tests"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "dali_gridaug/_validate.py").write_text("")
    (tmp_path / "dali_gridaug/augment/_rules.py").write_text("")
    (tmp_path / "dali_gridaug/augment/graph.py").write_text(
        "from dali_gridaug._validate import check_type\n"  # the root's: allowed inside it
        "from dali_gridaug.augment._rules import rule\n"  # its own package's: allowed
    )
    (tmp_path / "dali_gridaug/saliency/keep.py").write_text(
        "from dali_gridaug.augment import _rules\n"
        "import dali_gridaug.augment._rules\n"
        "from dali_gridaug.augment.graph import _kernel, public\n"
    )
    (tmp_path / "tests/test_x.py").write_text("from dali_gridaug._validate import check_type\n")
    found = private_imports(tmp_path, "dali_gridaug") + private_imports(tmp_path, "tests")
    assert found == [
        "dali_gridaug/saliency/keep.py:1: dali_gridaug.saliency.keep imports private "
        "dali_gridaug.augment._rules of package dali_gridaug.augment",
        "dali_gridaug/saliency/keep.py:2: dali_gridaug.saliency.keep imports private "
        "dali_gridaug.augment._rules of package dali_gridaug.augment",
        "dali_gridaug/saliency/keep.py:3: dali_gridaug.saliency.keep imports private "
        "dali_gridaug.augment.graph._kernel of package dali_gridaug.augment",
        "tests/test_x.py:1: tests.test_x imports private dali_gridaug._validate of package "
        "dali_gridaug",
    ]
