"""The floors of the code (README, 'Files and the method'): the method path imports downwards in the method's order,
the tools stand on top, and no import statement anywhere, at the top of a file or inside a function, closes a circle.
The circle check is run on made-up modules too, so that a circle it cannot see cannot hide behind a passing test."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHOD = ["data", "sde", "model", "fast", "enhance", "evaluate", "teacher", "distill"]  # bottom up: each file
TOOLS = ["listen", "speed", "figures"]  # imports only those before it; the tools stand on top, imported by none of them


def imported_names(source):
    """The top-level names of every module that a Python source imports, wherever the statement stands (the top of
    the file, a function, a branch), and of importlib.import_module("name") and __import__("name") calls."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in \
                ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def import_graph(root):
    """{module: the modules it imports} among the Python files of root and of root/tests."""
    files = {path.stem: path for path in [*root.glob("*.py"), *root.glob("tests/*.py")]}
    return {name: imported_names(path.read_text()) & files.keys() for name, path in files.items()}


def find_circle(graph):
    """A circle of imports [a, b, ..., a] in graph {module: modules it imports}, or None: a depth-first search that
    meets a module again on its own path has gone round a circle, of any length."""
    cleared = set()  # modules from which no circle can be reached

    def visit(module, path):
        if module in path:
            return path[path.index(module):] + [module]
        if module not in cleared:
            for imported in sorted(graph[module]):
                circle = visit(imported, path + [module])
                if circle:
                    return circle
            cleared.add(module)
        return None

    return next(filter(None, (visit(module, []) for module in sorted(graph))), None)


def check_no_circle(root):
    circle = find_circle(import_graph(root))
    assert circle is None, "import circle: " + " -> ".join(f"{name}.py" for name in circle)


def test_no_import_closes_a_circle():
    check_no_circle(ROOT)


def test_the_method_path_imports_downwards_and_no_tool():
    graph = import_graph(ROOT)
    assert {name for name in graph if not name.startswith("test_")} == set(METHOD) | set(TOOLS), \
        "every file stands on a floor: put a new one into METHOD or TOOLS"
    for i, name in enumerate(METHOD):
        assert graph[name] <= set(METHOD[:i]), f"{name}.py imports {sorted(graph[name] - set(METHOD[:i]))}"


def test_the_check_fails_on_a_circle_closed_inside_a_function(tmp_path):
    """Made-up modules: a -> b -> c at the tops of the files, and c imports a inside a function, under a branch;
    d imports itself through importlib. Both circles are seen; with c's import gone, only d's; then none."""
    sources = {"a": "import b\n", "b": "from c import f\n",
               "c": "import os\n\n\ndef f():\n    if os.sep:\n        from a import g  # inside\n    return g\n",
               "d": "import importlib\n\nd = importlib.import_module('d')\n"}
    for name, source in sources.items():
        (tmp_path / f"{name}.py").write_text(source)
    assert import_graph(tmp_path) == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}
    with pytest.raises(AssertionError, match="import circle: a.py -> b.py -> c.py -> a.py"):
        check_no_circle(tmp_path)
    (tmp_path / "c.py").write_text("import os\n\n\ndef f():\n    return os.sep\n")
    with pytest.raises(AssertionError, match="import circle: d.py -> d.py"):
        check_no_circle(tmp_path)
    (tmp_path / "d.py").unlink()
    check_no_circle(tmp_path)
    assert find_circle({"w": {"x", "z"}, "x": {"y"}, "y": {"z"}, "z": set()}) is None  # two ways down: no circle
    assert find_circle({"w": {"x"}, "x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]
