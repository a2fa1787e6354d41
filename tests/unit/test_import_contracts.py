"""The layers' import rules (docs/architecture.md, "Layers" and "Parse time stays light").

- core imports neither Airflow nor the Airflow-side modules (operators, hooks, the DAG factory,
  links, assets), directly or through another module of ours: checked statically on the source,
  every import at any depth (module level, inside functions, under TYPE_CHECKING);
- an operator module imports no other operator module, except ``operators.base``; hooks import
  no operators;
- importing the operators, hooks, DAG factory and every other Airflow-facing module, and running
  every DAG file, loads none of the heavy libraries: checked in a fresh interpreter by reading
  ``sys.modules``, with the chain of our files that imported each one.

Each checker is also run on a deliberate breach, so a checker that can no longer fail fails here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

HEAVY = ("pandas", "numpy", "scipy", "sklearn", "mlflow", "great_expectations", "pyarrow", "shap")

#: what core must not reach: Airflow and our modules built on it
CORE_FORBIDDEN = (
    "airflow",
    "mlops_ops.operators",
    "mlops_ops.hooks",
    "mlops_ops.dag_factory",
    "mlops_ops.links",
    "mlops_ops.assets",
)

#: packages exempt from the parse-time rule: core holds the heavy work, example is the demo's data
#: generator (imported by the CLI and tests, never by a DAG file)
# worker_preload is imported by Celery workers only, to load the heavy libraries once (its point)
# serving is the online service's process (`mlops-ops serve`); operators import it inside execute()
NOT_PARSE_TIME = ("mlops_ops.core", "mlops_ops.example", "mlops_ops.worker_preload", "mlops_ops.serving")


# -- the static checker ---------------------------------------------------------------------------


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str, root: Path) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in a file, at any depth, relative imports resolved.

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module under
    ``root``, else of ``pkg``.
    """
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub, root) else base))
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _files(root: Path, package: str) -> list[Path]:
    folder = root.joinpath(*package.split("."))
    return sorted(folder.rglob("*.py"))


def _graph(root: Path) -> dict[str, tuple[Path, list[tuple[int, str]]]]:
    return {module_name(p, root): (p, imports_of(p, root)) for p in _files(root, "mlops_ops")}


def core_breaches(root: Path) -> list[str]:
    """Imports by which core reaches Airflow or an Airflow-side module, with the chain of our modules.

    Follows our own modules transitively (core -> config -> ...), since importing a module runs
    its imports.
    """
    graph = _graph(root)
    breaches = []
    for start in sorted(m for m in graph if _within(m, ("mlops_ops.core",))):
        seen, stack = {start}, [(start, [start])]
        while stack:
            mod, chain = stack.pop()
            path, imports = graph[mod]
            for line, target in imports:
                if _within(target, CORE_FORBIDDEN):
                    where = f"{path.relative_to(root)}:{line}"
                    breaches.append(f"{' -> '.join(chain)} imports {target} ({where})")
                elif target.startswith("mlops_ops"):
                    # importing a.b.c runs a, a.b and a.b.c
                    parts = target.split(".")
                    for i in range(1, len(parts) + 1):
                        dep = ".".join(parts[:i])
                        if dep in graph and dep not in seen:
                            seen.add(dep)
                            stack.append((dep, [*chain, dep]))
    return sorted(set(breaches))


def operator_breaches(root: Path) -> list[str]:
    """Operator modules importing another operator module (``operators.base`` is shared)."""
    breaches = []
    for path in _files(root, "mlops_ops.operators"):
        if path.name == "__init__.py":
            continue
        me = module_name(path, root)
        for line, target in imports_of(path, root):
            if _within(target, ("mlops_ops.operators",)) and target not in (me, "mlops_ops.operators.base"):
                breaches.append(f"{path.relative_to(root)}:{line} imports {target}")
    return sorted(set(breaches))


def hook_breaches(root: Path) -> list[str]:
    """Hooks sit below operators and the DAG factory: they import neither."""
    breaches = []
    for path in _files(root, "mlops_ops.hooks"):
        for line, target in imports_of(path, root):
            if _within(target, ("mlops_ops.operators", "mlops_ops.dag_factory")):
                breaches.append(f"{path.relative_to(root)}:{line} imports {target}")
    return breaches


def test_core_reaches_neither_airflow_nor_operators_nor_hooks():
    breaches = core_breaches(ROOT)
    assert not breaches, "core must stay free of Airflow (docs/architecture.md, 'Layers'):\n" + "\n".join(
        breaches
    )


def test_operators_do_not_import_each_other():
    breaches = operator_breaches(ROOT)
    assert not breaches, (
        "operators share through operators.base, core or mlops_ops.artifacts, not through each other:\n"
        + "\n".join(breaches)
    )


def test_hooks_import_no_operators():
    assert hook_breaches(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {"mlops_ops/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_static_checks_find_deliberate_breaches(tmp_path):
    root = _tree(
        tmp_path,
        {
            "mlops_ops/config.py": "import pydantic\n",
            "mlops_ops/links.py": "from airflow.sdk import BaseOperatorLink\n",
            "mlops_ops/helpers.py": "from mlops_ops import links\n",
            "mlops_ops/core/__init__.py": "",
            "mlops_ops/core/clean.py": "import numpy\nfrom mlops_ops.config import X\nfrom . import other\n",
            "mlops_ops/core/other.py": "import math\n",
            "mlops_ops/core/direct.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from airflow.sdk import Context
            """,
            "mlops_ops/core/late.py": """
                def f():
                    from mlops_ops.hooks.storage import to_path
            """,
            "mlops_ops/core/indirect.py": "from mlops_ops.helpers import thing\n",
            "mlops_ops/hooks/__init__.py": "",
            "mlops_ops/hooks/storage.py": "from mlops_ops.operators.base import B\n",
            "mlops_ops/operators/__init__.py": "from mlops_ops.operators.train import T\n",
            "mlops_ops/operators/base.py": "import airflow\n",
            "mlops_ops/operators/train.py": "from mlops_ops.operators.base import B\nNAME = 'x'\n",
            "mlops_ops/operators/evaluate.py": """
                from mlops_ops.operators.base import B

                def execute():
                    from .train import NAME
            """,
            "mlops_ops/operators/monitor.py": "from mlops_ops.operators import train\n",
            "mlops_ops/operators/score.py": "import mlops_ops.operators\n",
        },
    )
    core = "\n".join(core_breaches(root))
    assert "mlops_ops.core.direct imports airflow.sdk (mlops_ops/core/direct.py:4)" in core
    assert "mlops_ops.core.late imports mlops_ops.hooks.storage (mlops_ops/core/late.py:3)" in core
    assert "mlops_ops.core.indirect -> mlops_ops.helpers imports mlops_ops.links" in core
    assert "core.clean" not in core
    assert "core.other" not in core
    assert operator_breaches(root) == [
        "mlops_ops/operators/evaluate.py:5 imports mlops_ops.operators.train",
        "mlops_ops/operators/monitor.py:1 imports mlops_ops.operators.train",
        "mlops_ops/operators/score.py:1 imports mlops_ops.operators",
    ]
    assert hook_breaches(root) == ["mlops_ops/hooks/storage.py:1 imports mlops_ops.operators.base"]


# -- the parse-time probe ---------------------------------------------------------------------------

# Runs in a fresh interpreter: records, for the first import of each heavy library, the frames of
# the files outside the Python installation that led to it; then imports the modules and runs the
# DAG files it is given, and prints the heavy libraries loaded, with those chains, as JSON.
_PROBE = r"""
import importlib.abc, json, os, runpy, sys, sysconfig, traceback

heavy, modules, dag_files = json.loads(sys.argv[1])
installed = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})
chains = {}

class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = next((h for h in heavy if name == h or name.startswith(h + ".")), None)
        if top is not None and top not in chains:
            frames = traceback.extract_stack()[:-1]
            chains[top] = [
                f"{f.filename}:{f.lineno}" for f in frames
                if not f.filename.startswith("<") and not f.filename.startswith(installed)
            ]
        return None

sys.meta_path.insert(0, Recorder())
for name in modules:
    __import__(name)
for path in dag_files:
    runpy.run_path(path)
loaded = sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in sys.modules))
print(json.dumps({m: chains.get(m, ["(imported before the probe started)"]) for m in loaded}))
"""


def probe_parse_time(
    modules: list[str],
    dag_files: list[Path],
    env: dict[str, str] | None = None,
    heavy: tuple[str, ...] = HEAVY,
) -> dict:
    """The ``heavy`` packages (or any module under them) that importing ``modules`` and running
    ``dag_files`` loads, with the chains of our files that led to each."""
    import os

    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([list(heavy), modules, [str(p) for p in dag_files]])],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_time_modules(root: Path) -> list[str]:
    """Every module of ours that a DAG file or the DAG processor may import: all but core and example."""
    names = [module_name(p, root) for p in _files(root, "mlops_ops")]
    return sorted(n for n in names if not _within(n, NOT_PARSE_TIME))


def test_operators_hooks_dag_factory_and_dag_files_load_nothing_heavy():
    modules = parse_time_modules(ROOT)
    assert {"mlops_ops.operators", "mlops_ops.hooks.mlflow", "mlops_ops.dag_factory.training"} <= set(modules)
    dag_files = sorted((ROOT / "dags").glob("*.py"))
    loaded = probe_parse_time(modules, dag_files, env={"MLOPS_PIPELINES": str(ROOT / "pipelines")})
    assert loaded == {}, "heavy libraries loaded at DAG parse time, by these chains:\n" + json.dumps(
        loaded, indent=2
    )


def test_the_probe_finds_a_deliberate_breach_and_names_the_chain(tmp_path):
    (tmp_path / "helper_lib.py").write_text("import json\nimport numpy  # the breach\n")
    dag = tmp_path / "bad_dag.py"
    dag.write_text(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport helper_lib\n")
    loaded = probe_parse_time([], [dag])
    assert set(loaded) == {"numpy"}
    chain = "\n".join(loaded["numpy"])
    assert f"{dag}:3" in chain
    assert f"{tmp_path / 'helper_lib.py'}:2" in chain


#: provider modules a DAG file must not load: an asset URI whose scheme is not ``x-...`` (or
#: ``file``) makes Airflow import every installed provider's asset handler, and the Amazon
#: provider's imports boto3 and its S3 hook (0.2 s of each parse; docs/architecture.md, "Assets")
PARSE_TIME_PROVIDERS = ("airflow.providers.amazon.aws",)


def test_dag_files_load_no_provider_asset_handlers():
    dag_files = sorted((ROOT / "dags").glob("*.py"))
    loaded = probe_parse_time(
        [], dag_files, env={"MLOPS_PIPELINES": str(ROOT / "pipelines")}, heavy=PARSE_TIME_PROVIDERS
    )
    assert loaded == {}, "provider modules loaded at DAG parse time, by these chains:\n" + json.dumps(
        loaded, indent=2
    )


def test_the_provider_probe_finds_an_asset_with_a_provider_scheme(tmp_path):
    pytest.importorskip("airflow.providers.amazon", reason="the Amazon provider (dev extra) is not installed")
    dag = tmp_path / "asset_dag.py"
    dag.write_text('from airflow.sdk import Asset\nAsset("mlops://churn/model")\n')
    loaded = probe_parse_time([], [dag], heavy=PARSE_TIME_PROVIDERS)
    assert set(loaded) == {"airflow.providers.amazon.aws"}
    assert f"{dag}:2" in "\n".join(loaded["airflow.providers.amazon.aws"])
