"""No import cycle inside taskhub: between any two of its modules, imports point one way.

Every import counts — at the top of a module, inside a function, under TYPE_CHECKING — so a
cycle can't hide in a function-level import. (.importlinter keeps the packages' direction; this
keeps each package's modules acyclic among themselves.) The graph is grimp's, the library
import-linter uses.
"""

import grimp
import pytest


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # No cache: a stale cache would describe other sources than the ones under test.
    return grimp.build_graph("taskhub", cache_dir=None)


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every set of modules that import one another in a circle (Tarjan's strongly connected
    components with more than one module), each sorted."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return sorted(cycles)


def describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    members = set(cycle)
    lines = [" <-> ".join(cycle)]
    for importer in cycle:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(f"  {importer}:{detail['line_number']}: {detail['line_contents']}")
    return "\n".join(lines)


def test_no_module_of_taskhub_is_part_of_an_import_cycle(graph):
    cycles = import_cycles(graph)

    assert len(graph.modules) > 100  # it does see the package
    assert cycles == [], "\n\n".join(describe(graph, cycle) for cycle in cycles)


def test_a_planted_cycle_is_found():
    planted = grimp.build_graph("taskhub", cache_dir=None)
    # The dispatcher imports conf: conf importing the dispatcher closes a circle.
    planted.add_import(importer="taskhub.conf", imported="taskhub.engine.dispatcher")

    cycles = import_cycles(planted)

    assert len(cycles) == 1
    assert {"taskhub.conf", "taskhub.engine.dispatcher"} <= set(cycles[0])
