"""Heavy modules imported lazily (pandas by Streamlit's st.metric/st.json/components; scipy,
scikit-learn, scikit-image by the app's own function-level imports) are imported once, by one
thread holding views.context's lock: two sessions importing pandas at once raised "partially
initialized module 'pandas'" (issue 9). A cold server's first tab does not wait for them."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.explorer_fixtures import make_checkpoint
from views.context import SHARED_IMPORTS

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("explorer", "views", "trainer")

# Runs in a fresh interpreter: imports what the app script imports at its top (start-up: every
# session's first run does it before drawing anything, holding no other import lock), then opens
# one tab under AppTest and reports, for every shared module imported while the page is drawn,
# whether views.context's import lock was held at that moment.
CHILD = """
import ast, importlib, json, sys
from streamlit.testing.v1 import AppTest
import views.context as vc
for node in ast.parse(open("app_page.py").read()).body:
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        for a in node.names:
            try:
                importlib.import_module(f"{node.module}.{a.name}")
            except ImportError:
                importlib.import_module(node.module)
    elif isinstance(node, ast.Import):
        for a in node.names:
            importlib.import_module(a.name)
watched = set(vc.SHARED_IMPORTS) | {"pandas", "pyarrow"}
first = {}
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name in watched and name not in first and name not in sys.modules:
            first[name] = vc._IMPORT_LOCK.locked()
        return None
sys.meta_path.insert(0, Spy())
already = sorted(m for m in watched if m in sys.modules)
at = AppTest.from_file("app_page.py", default_timeout=120)
at.session_state["view"] = sys.argv[1]
at.run()
print(json.dumps({"already": already, "first": first, "errors": [str(e.value) for e in at.exception],
                  "drawn": len(at.get("image")) + len(at.caption)}))
"""


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpts")
    make_checkpoint(d / "mnist-z2.safetensors", "mnist", 2)
    return d


@pytest.mark.parametrize("tab", ["Manifold grid", "Live"])  # the first tab, a light one; Live's component uses pandas
def test_shared_modules_are_imported_under_the_lock(tab, tiny_dir):
    """A cold server's first tab (app_page.LIGHT_TABS) draws without any shared module; any
    other tab imports them all, holding the lock, before it draws."""
    env = {**os.environ, "VAE_CHECKPOINT_DIR": str(tiny_dir)}
    out = subprocess.run([sys.executable, "-c", CHILD, tab], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert not res["errors"], res["errors"]
    assert res["drawn"] >= 1  # the tab was drawn
    assert "pandas" not in res["already"], "pandas is imported before the app runs: this test cannot see the race"
    if tab == "Manifold grid":
        assert not res["first"], f"the first tab imported shared modules (a cold start waits for them): {res['first']}"
        return
    expected = ({"pandas", "pyarrow"} | set(SHARED_IMPORTS)) - set(res["already"])
    assert expected <= set(res["first"]), f"not imported by the first run: {expected - set(res['first'])}"
    outside = [m for m, locked in res["first"].items() if not locked]
    assert not outside, f"imported without the lock (a concurrent session could see a half-made module): {outside}"


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(module, inside a function) for every import in ``tree``."""
    out = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            f = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, f) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                out.append((child.module, f))
                out.extend((f"{child.module}.{a.name}", f) for a in child.names
                           if _module_file(f"{child.module}.{a.name}"))  # `from views import manifold`
            visit(child, f)

    visit(tree, False)
    return out


def _walk(eager_only: bool) -> dict[str, list[tuple[str, bool]]]:
    """First-party module -> its imports, for every module reachable from app_page.py
    (through module-level imports only, if ``eager_only``)."""
    graph: dict[str, list[tuple[str, bool]]] = {}
    todo = ["app_page"]
    while todo:
        name = todo.pop()
        if name in graph:
            continue
        path = ROOT / "app_page.py" if name == "app_page" else _module_file(name)
        graph[name] = _imports(ast.parse(path.read_text()))
        todo += [m for m, in_func in graph[name]
                 if m.split(".")[0] in FIRST_PARTY and _module_file(m) and not (eager_only and in_func)]
    return graph


def _third_party(mod: str) -> bool:
    top = mod.split(".")[0]
    return top not in FIRST_PARTY and top not in sys.stdlib_module_names and top != "__future__"


# Lazy imports in code the app reaches but never runs, and why they are left out of SHARED_IMPORTS.
NEVER_RUN_BY_THE_APP = {
    "umap": "trainer.evaluate.umap_embedding: the trainer's embedding; checkpoints store it",
}


def test_every_lazy_third_party_import_of_the_app_is_shared():
    """Walk the app's own import graph from app_page.py. A third-party module it imports
    lazily (inside a function, or at the top of a first-party module that is itself imported
    lazily) and that start-up does not import already must be one of SHARED_IMPORTS (or a
    parent package of one): imported once, under the lock, before sessions can race for it."""
    eager, everything = _walk(eager_only=True), _walk(eager_only=False)
    assert "trainer.directions" in everything and "trainer.attributes" not in eager  # lazy code is seen
    at_start = {m for imps in eager.values() for m, in_func in imps if not in_func and _third_party(m)}
    lazy = {m: name for name, imps in everything.items() for m, in_func in imps
            if _third_party(m) and (in_func or name not in eager) and m not in at_start}
    uncovered = {m: where for m, where in lazy.items() if m.split(".")[0] not in NEVER_RUN_BY_THE_APP
                 and not any(s == m or s.startswith(m + ".") for s in SHARED_IMPORTS)}
    assert not uncovered, f"lazily imported, not in views.context.SHARED_IMPORTS: {uncovered}"
