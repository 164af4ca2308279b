"""import_graph: which modules of the migrate_fs package import which, and any cycles.

Its responsibility is reading the package's source with :mod:`ast` (stdlib only) and reporting
the import graph between migrate_fs modules; ``tests/test_layers.py`` holds the layer rules
against it. It never imports or runs the package it reads, and it judges nothing but cycles.

Modules are named relative to the package (``plan.decide``, ``cli.main``); the package's own
``__init__`` is ``migrate_fs``, a subpackage's ``__init__`` is the subpackage (``plan``). Counted:
``import migrate_fs.x``, ``from migrate_fs.x import y`` (``x.y`` where y is a submodule, else
``x``), ``from migrate_fs import x`` (``x`` where a module or subpackage of that name exists,
else the package itself), relative imports, and imports at any depth (inside functions, classes,
``if TYPE_CHECKING:``). Not seen: imports by string (``importlib.import_module(...)``, as the
package's lazy ``__getattr__`` does). Also dropped: a module importing itself inside its
``if __name__ == "__main__":`` block (it runs as ``__main__`` then, so that is no import cycle).

    python scripts/import_graph.py [PACKAGE_DIR] [--dot]

prints "module -> a, b, c" lines, then "no cycle" or the cycles (exit code 1 if any), or with
``--dot`` the graph in Graphviz dot.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "migrate_fs"
DEFAULT_PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE


def module_files(package_dir: Path) -> dict[str, Path]:
    """Module name (relative to the package) -> its source file, for every .py file below it."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts) or PACKAGE] = path
    return modules


def imported(tree: ast.AST, package: str) -> Iterator[tuple[ast.stmt, str, tuple[str, ...]]]:
    """(statement, absolute module, names imported from it) for every import at any depth.

    ``package`` is the dotted package the module lives in (for an ``__init__``, the package
    itself): relative imports are resolved against it. ``import a.b`` gives ("a.b", ()).
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node, base, tuple(alias.name for alias in node.names)


def _main_guard_nodes(tree: ast.Module) -> set[int]:
    """ids of every node inside a top-level ``if __name__ == "__main__":`` block."""
    ids: set[int] = set()
    for stmt in tree.body:
        test = stmt.test if isinstance(stmt, ast.If) else None
        if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
                and test.left.id == "__name__" and len(test.comparators) == 1
                and isinstance(test.comparators[0], ast.Constant)
                and test.comparators[0].value == "__main__"):
            ids.update(id(node) for node in ast.walk(stmt))
    return ids


def _resolve(dotted: str, modules: dict[str, Path]) -> str | None:
    """The longest existing migrate_fs module that the absolute dotted name falls in, or None."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    parts = parts[1:]
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or PACKAGE


def _targets(module: str, names: tuple[str, ...], modules: dict[str, Path]) -> set[str]:
    """The migrate_fs modules one import statement makes its module depend on."""
    target = _resolve(module, modules)
    if target is None:
        return set()
    prefix = "" if target == PACKAGE else target + "."
    found = {prefix + name for name in names if prefix + name in modules}
    if len(found) < len(names) or not names:
        found.add(target)  # a name that is no submodule comes from the module itself
    return found


def module_graph(package_dir: Path) -> dict[str, set[str]]:
    """Every module of the package -> the set of modules of the package it imports."""
    modules = module_files(package_dir)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        package = PACKAGE if name == PACKAGE else f"{PACKAGE}.{name}"
        if not is_package:
            package = package.rpartition(".")[0]
        guarded = _main_guard_nodes(tree)
        edges: set[str] = set()
        for node, target, names in imported(tree, package):
            found = _targets(target, names, modules)
            if id(node) in guarded:
                found.discard(name)
            edges |= found
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, and self-imports (Tarjan).

    Each cycle is sorted, and the list is sorted, so the result does not depend on set order.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] != index[node]:
            return
        component = []
        while True:
            member = stack.pop()
            on_stack.discard(member)
            component.append(member)
            if member == node:
                break
        if len(component) > 1 or node in graph.get(node, ()):
            found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def text(graph: dict[str, set[str]]) -> str:
    """"module -> a, b, c" lines, sorted, then "no cycle" or one line per cycle (its modules)."""
    lines = [f"{m} -> {', '.join(sorted(graph[m])) or '(nothing)'}" for m in sorted(graph)]
    found = cycles(graph)
    lines += [f"cycle: {' -> '.join(c * 2) if len(c) == 1 else ', '.join(c)}" for c in found]
    return "\n".join(lines if found else [*lines, "no cycle"])


def dot(graph: dict[str, set[str]]) -> str:
    """The graph in Graphviz dot: an arrow from each module to every module it imports."""
    lines = [f"digraph {PACKAGE} {{", "  rankdir=BT;", "  node [shape=box, fontsize=10];"]
    for module in sorted(graph):
        lines.append(f'  "{module}";')
        lines += [f'  "{module}" -> "{target}";' for target in sorted(graph[module])]
    lines.append("}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", nargs="?", type=Path, default=DEFAULT_PACKAGE_DIR,
                        help=f"the package folder (default: {DEFAULT_PACKAGE_DIR})")
    parser.add_argument("--dot", action="store_true", help="print Graphviz dot instead")
    args = parser.parse_args(argv)
    graph = module_graph(args.package_dir)
    print(dot(graph) if args.dot else text(graph))
    return 1 if cycles(graph) else 0


if __name__ == "__main__":
    sys.exit(main())
