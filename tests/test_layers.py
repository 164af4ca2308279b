"""The import direction of the package: each module in one tier, imports only go down.

The graph comes from ``scripts/import_graph.py`` (the source read with ``ast``, nothing
imported). The tiers, lowest first, are those of DESIGN.md's "Layout we are growing into"; a
module may import modules of its own or a lower tier, with the extra rules of tiers 0, 3 and 5.
The checks are functions of a graph, so that a test can feed them a broken graph and see them
report it (they cannot pass by reporting nothing).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "migrate_fs"
sys.path.insert(0, str(ROOT / "scripts"))

import import_graph  # noqa: E402

# Tier -> (name, members). A member that is a subpackage (SUBPACKAGES) also places every module
# below it: ``plan`` places plan.decide, plan.rules, ... and any future plan.x.
TIERS: dict[int, tuple[str, set[str]]] = {
    0: ("catalogues", {"migrate_fs", "errors", "problems", "iostats"}),
    1: ("leaves", {"config", "charsets", "values", "pixels", "paths", "sources", "archives",
                   "decode", "summary", "sample_export", "iods", "tablefiles"}),
    2: ("codecs", {"elements", "transcode"}),
    3: ("stage logic", {"header", "scan", "reader", "pydicom_reader", "inventory", "writer",
                        "plan"}),
    4: ("manifest", {"manifest"}),
    5: ("execution", {"execution"}),
    # audit reads manifests part by part and runs its per-object work through execution, as
    # planning and status do: it sits with them (DESIGN.md drew it with the stage logic)
    6: ("pipeline", {"pipeline", "planning", "status", "audit"}),
    7: ("cli", {"cli", "__main__"}),
}
SUBPACKAGES = {"plan", "audit", "execution", "cli"}

# Tier 3: the stage logic's sides, and which sides each must not import.
READER_SIDE = {"header", "scan", "reader", "pydicom_reader", "inventory"}
TIER_3_FORBIDDEN = {
    "writer": {"plan", "reader side"},
    "plan": {"writer", "reader side"},
    "reader side": {"plan", "writer"},
}
# Tier 5 knows no DICOM: besides execution.*, only these (and tier 0).
EXECUTION_MAY_IMPORT = {"manifest"}
DICOM_LIBRARIES = {"pydicom", "pylibjpeg", "gdcm", "pynetdicom", "highdicom"}


def tier_of(module: str) -> int | None:
    head = module.split(".")[0]
    key = head if head in SUBPACKAGES else module
    return next((tier for tier, (_, members) in TIERS.items() if key in members), None)


def describe(module: str) -> str:
    tier = tier_of(module)
    return f"{module} (tier {tier} {TIERS[tier][0]})" if tier is not None else module


def side_of(module: str) -> str | None:
    """The tier-3 side of a module: 'reader side', 'writer', 'plan', 'audit', or None."""
    head = module.split(".")[0]
    if module in READER_SIDE:
        return "reader side"
    if module == "writer":
        return "writer"
    return head if head in {"plan", "audit"} else None


def edge_violation(source: str, target: str) -> str | None:
    """The rule the import source -> target breaks, or None (also for unplaced modules)."""
    low, high = tier_of(target), tier_of(source)
    if low is None or high is None:
        return None  # unplaced_modules reports these
    if low > high:
        return (f"upward import: {describe(source)} imports {describe(target)}; a module "
                "imports only modules of its own or a lower tier")
    if high == 0:
        return "catalogues (tier 0) import nothing of migrate_fs"
    side, other = side_of(source), side_of(target)
    if high == low == 3 and other in TIER_3_FORBIDDEN.get(side or "", set()):
        return (f"tier 3: the {side} imports nothing of the {other} "
                f"(writer, plan.* and reader side {sorted(READER_SIDE)} are independent)")
    if high == 5 and not (low == 0 or target in EXECUTION_MAY_IMPORT
                          or target.split(".")[0] == "execution"):
        return (f"tier 5: execution.* knows no DICOM: it imports only execution.*, "
                f"{', '.join(sorted(EXECUTION_MAY_IMPORT))} and tier 0, not {describe(target)}")
    return None


def unplaced_modules(graph: dict[str, set[str]]) -> list[str]:
    messages = []
    for module in sorted(m for m in graph if tier_of(m) is None):
        imports = sorted(graph[module]) or ["nothing"]
        importers = sorted(m for m, targets in graph.items() if module in targets) or ["nobody"]
        messages.append(
            f"module {module} has no tier: add it to TIERS in tests/test_layers.py, at or above "
            f"the tiers of what it imports ({', '.join(map(describe, imports))}) and at or below "
            f"those of its importers ({', '.join(map(describe, importers))})")
    return messages


def cycle_violations(graph: dict[str, set[str]]) -> list[str]:
    return [f"import cycle among {', '.join(cycle)}: imports must go one way"
            for cycle in import_graph.cycles(graph)]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return [f"{source} -> {target}: {rule}"
            for source in sorted(graph) for target in sorted(graph[source])
            if (rule := edge_violation(source, target)) is not None]


def catalogue_violations(graph: dict[str, set[str]]) -> list[str]:
    return [f"{module} -> {target}: catalogues (tier 0) import nothing of migrate_fs"
            for module in sorted(graph) if tier_of(module) == 0
            for target in sorted(graph[module])]


def violations(graph: dict[str, set[str]]) -> list[str]:
    return (unplaced_modules(graph) + cycle_violations(graph) + layer_violations(graph)
            + catalogue_violations(graph))


def dicom_imports(files: dict[str, Path]) -> list[str]:
    """'module imports X' for every DICOM library a module imports, at any depth."""
    found = []
    for module, path in sorted(files.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for _, name, _ in import_graph.imported(tree, import_graph.PACKAGE):
            if name.split(".")[0] in DICOM_LIBRARIES:
                found.append(f"{module} imports {name}: execution.* knows no DICOM")
    return found


GRAPH = import_graph.module_graph(PACKAGE_DIR)


def test_graph_sees_the_package():
    # the graph is not empty by mistake: the known modules and some known edges are there
    assert len(GRAPH) >= 30
    assert {"migrate_fs", "plan", "plan.decide", "cli.main", "execution.batches"} <= set(GRAPH)
    assert "plan.rules" in GRAPH["plan.decide"]
    assert "manifest" in GRAPH["execution.batches"]
    assert "cli.plan" in GRAPH["cli.main"]


def test_every_module_has_a_tier():
    assert unplaced_modules(GRAPH) == []


def test_no_import_cycle():
    assert cycle_violations(GRAPH) == []


def test_imports_go_down():
    assert layer_violations(GRAPH) == []


def test_catalogues_import_nothing_of_ours():
    assert catalogue_violations(GRAPH) == []


def test_execution_imports_no_dicom_library():
    files = {m: p for m, p in import_graph.module_files(PACKAGE_DIR).items()
             if m.split(".")[0] == "execution"}
    assert files, "no execution.* module found"
    assert dicom_imports(files) == []


def test_the_checks_catch_violations(tmp_path):
    broken = {
        "migrate_fs": set(), "errors": set(), "header": set(), "transcode": set(),
        "problems": {"errors"},              # catalogues import nothing
        "config": {"errors", "writer"},      # upward: tier 1 -> tier 3
        "values": {"paths"}, "paths": {"values"},  # a cycle
        "writer": {"plan.decide"},           # tier 3: the writer imports no plan
        "plan.decide": {"header"},           # tier 3: the plan imports no reader side
        "execution.batches": {"transcode", "manifest", "errors"},  # tier 5: no DICOM
        "manifest": {"pipeline"},            # nothing below pipeline imports pipeline
        "pipeline": {"cli.main"},            # nothing outside cli.* imports cli.*
        "cli.main": set(),
        "newthing": {"errors"},              # not placed
    }
    found = violations(broken)
    expected = [
        "module newthing has no tier",
        "import cycle among paths, values",
        "config -> writer: upward import",
        "problems -> errors: catalogues (tier 0) import nothing",
        "writer -> plan.decide: tier 3: the writer imports nothing of the plan",
        "plan.decide -> header: tier 3: the plan imports nothing of the reader side",
        "execution.batches -> transcode: tier 5: execution.* knows no DICOM",
        "manifest -> pipeline: upward import",
        "pipeline -> cli.main: upward import",
    ]
    for text in expected:
        assert any(text in message for message in found), (text, found)
    assert not any("execution.batches -> manifest" in m or "execution.batches -> errors" in m
                   or "config -> errors" in m for m in found), found
    assert import_graph.cycles({"a": {"a"}, "b": set()}) == [["a"]]  # a self-import is a cycle

    ok = {"migrate_fs": set(), "errors": set(), "config": {"errors"}, "transcode": {"config"},
          "writer": {"transcode"}, "plan": {"plan.rules"}, "plan.rules": {"config"},
          "manifest": {"errors", "writer"}, "execution": {"manifest", "execution.loky"},
          "execution.loky": set(), "pipeline": {"plan", "execution"}, "cli.main": {"pipeline"}}
    assert violations(ok) == []

    source = tmp_path / "backend.py"
    source.write_text("import os\n\ndef f():\n    from pydicom.uid import UID\n")
    assert dicom_imports({"execution.backend": source}) == [
        "execution.backend imports pydicom.uid: execution.* knows no DICOM"]
