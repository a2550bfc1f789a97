"""Every shipped UI workflow in the real ComfyUI frontend, in Debian's headless Chromium.

Each workflow is loaded into the page through the app's own loader; every node must resolve to a
registered node type, and queueing the graph from the page must run it to completion on the server, with
every output node of the graph producing its output (a node the server refuses would otherwise only drop
its branch). Sampler widgets named `steps` are lowered to CI_SAMPLER_STEPS in the page before queueing, so
this stays inside CI's time on CPU; the integration tests run the shipped step counts.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
REPO_ROOT = Path(__file__).resolve().parents[2]
UI_WORKFLOWS = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
CHROMIUM = "/usr/bin/chromium"
CI_SAMPLER_STEPS = 2
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def page(comfy, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (scripts/setup.sh --test installs it)"
    # a first start would otherwise load a blank workflow and open the template browser over the test's graph
    status, _ = comfy.post_json("/settings/Comfy.TutorialCompleted", True)
    assert status == 200
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        page = context.new_page()
        page.set_viewport_size({"width": 1600, "height": 1000})
        page.goto(comfy.url, wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
        yield page
        context.close()


def load_graph(page, workflow: dict, attempts: int = 3) -> None:
    """The app's own loader; on a busy machine the first load can land before the app has settled, so retry."""
    for _ in range(attempts):
        page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
        try:
            page.wait_for_function(
                "(n) => window.app.graph._nodes.length === n", arg=len(workflow["nodes"]), timeout=30_000
            )
            return
        except Exception:  # playwright's TimeoutError: load again
            continue


def assert_widgets_match_api_workflow(page, name: str) -> None:
    """The prompt the page builds carries the API workflow's widget values: a widget list shifted by one
    (a control widget the generator did not know of) would otherwise hand values to the wrong inputs."""
    api = json.loads((REPO_ROOT / "workflows" / "api" / f"{name}.json").read_text())
    built = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    for node_id, node in api.items():
        for input_name, value in node["inputs"].items():
            if isinstance(value, list):
                continue
            got = built[node_id]["inputs"].get(input_name)
            assert got == value, (
                f"node {node_id} ({node['class_type']}) '{input_name}': page has {got!r}, workflow {value!r}"
            )


def screenshot(page, name: str, tmp_path_factory) -> Path:
    """A full-page picture of the loaded graph, fitted to the view: under $FACECONTROL_SCREENSHOTS when set
    (to look at them), else in the test's temporary folder."""
    folder = Path(os.environ.get("FACECONTROL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    page.evaluate(
        "() => { const c = window.app.canvas; if (c?.ds && window.app.graph) { c.ds.reset?.(); "
        "window.app.graph.setDirtyCanvas(true, true); } }"
    )
    page.keyboard.press(".")  # the frontend's "fit view to selection or graph" shortcut
    page.wait_for_timeout(500)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{path} is nearly empty"
    return path


def history_ids(comfy) -> set[str]:
    return set(comfy.get_json("/history"))


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=[p.stem for p in UI_WORKFLOWS])
def test_ui_workflow_loads_and_queues(page, comfy, path, tmp_path_factory):
    workflow = json.loads(path.read_text())
    load_graph(page, workflow)
    unresolved = page.evaluate(
        "() => window.app.graph._nodes.filter(n => !window.LiteGraph.registered_node_types[n.type]).map(n => n.type)"
    )
    assert unresolved == [], f"nodes the frontend does not know: {unresolved}"
    loaded = page.evaluate("() => window.app.graph._nodes.length")
    assert loaded == len(workflow["nodes"])
    assert_widgets_match_api_workflow(page, path.stem)
    groups = page.evaluate("() => (window.app.graph._groups || window.app.graph.groups || []).map(g => g.title)")
    assert groups == [g["title"] for g in workflow["groups"]], f"groups in the page: {groups}"
    screenshot(page, path.stem, tmp_path_factory)

    page.evaluate(
        """(steps) => { for (const n of window.app.graph._nodes) for (const w of n.widgets || [])
        if (w.name === 'steps' && w.value > steps) w.value = steps; }""",
        CI_SAMPLER_STEPS,
    )
    before = history_ids(comfy)
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    deadline = time.time() + 600
    new = set()
    while time.time() < deadline:
        new = history_ids(comfy) - before
        queue = comfy.get_json("/queue")
        if new and not queue["queue_running"] and not queue["queue_pending"]:
            break
        time.sleep(0.5)
    assert new, "queueing from the page reached no prompt on the server"
    history = comfy.get_json("/history")
    for prompt_id in new:
        status = history[prompt_id]["status"]
        assert status["status_str"] == "success", status
        assert comfy.output_files(history[prompt_id]), "the queued graph saved nothing"
        ran = set(history[prompt_id]["outputs"])
        missing = {str(n["id"]) for n in workflow["nodes"] if n["type"] in output_node_types(comfy)} - ran
        assert not missing, f"output nodes {sorted(missing)} produced nothing (refused by the server?)"


_OUTPUT_TYPES: set[str] = set()


def output_node_types(comfy) -> set[str]:
    if not _OUTPUT_TYPES:
        _OUTPUT_TYPES.update(k for k, v in comfy.get_json("/object_info").items() if v.get("output_node"))
    return _OUTPUT_TYPES


def _with_old_type_names(workflow: dict) -> dict:
    """The workflow as FaceControl 0.1 saved it: socket types without the FACECONTROL_ prefix."""
    text = json.dumps(workflow)
    for old, new in json.loads((REPO_ROOT / "web" / "renamed_types.json").read_text())["FaceControl 0.1"].items():
        text = text.replace(f'"{new}"', f'"{old}"')
    return json.loads(text)


def test_a_workflow_saved_with_the_old_type_names_loads_with_the_new_ones(page, comfy):
    current = json.loads((REPO_ROOT / "example_workflows" / "face_adapter_spatial_condition.json").read_text())
    old = _with_old_type_names(current)
    assert "FACES" in json.dumps(old) and "FACECONTROL_FACES" not in json.dumps(old)
    load_graph(page, old)
    link_types = page.evaluate("""() => { const links = window.app.graph.links;
        const all = links instanceof Map ? [...links.values()] : Object.values(links);
        return all.filter(l => l).map(l => l.type); }""")
    slot_types = page.evaluate("""() => window.app.graph._nodes.filter(n => n.type.startsWith('FaceControl'))
        .flatMap(n => [...(n.inputs || []), ...(n.outputs || [])].map(s => s.type))""")
    expected = {link[5] for link in current["links"]}
    assert set(link_types) == expected, f"links after loading: {sorted(set(link_types))}"
    assert not {t for t in slot_types if t in {"FACES", "FACE_CROP", "FACE_3DMM", "FACE_LANDMARKS"}}, slot_types
    before = history_ids(comfy)
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    deadline = time.time() + 300
    while time.time() < deadline and not (history_ids(comfy) - before):
        time.sleep(0.5)
    new = history_ids(comfy) - before
    assert new, "the migrated graph reached no prompt on the server"
    while time.time() < deadline and comfy.get_json("/queue")["queue_running"]:
        time.sleep(0.5)
    assert all(comfy.get_json("/history")[p]["status"]["status_str"] == "success" for p in new)


def test_the_page_runs_the_frontend_asked_for(page, comfy):
    """COMFYUI_FRONTEND_VERSION=<version|latest> serves that comfyui-frontend-package (from .cache/frontend)."""
    asked = os.environ.get("COMFYUI_FRONTEND_VERSION")
    version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || ''")
    print(f"frontend in the page: {version}")
    assert version
    if asked:
        served = Path(comfy.frontend).parent.parent.name
        assert version == served and (asked == "latest" or served == asked)


def test_template_browser_shows_the_packs_workflows_with_thumbnails(page, comfy, tmp_path_factory):
    """The frontend's own template browser (Workflow > Browse Templates) lists the pack's workflows under the
    pack's name with their thumbnails (it fetches each <name>.jpg and shows it as a blob), and opening one
    loads that graph."""
    names = {p.stem for p in UI_WORKFLOWS}
    pack = next(name for name, entries in comfy.get_json("/workflow_templates").items() if set(entries) == names)
    page.evaluate("async () => { await window.app.extensionManager.command.execute('Comfy.BrowseTemplates'); }")
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(pack, exact=True).first.click(timeout=60_000)
    dialog.locator("h3", has_text=sorted(names)[0]).first.wait_for(timeout=60_000)
    page.wait_for_function(
        """() => { const imgs = [...document.querySelectorAll('[role=dialog] img')];
            return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth >= 256); }""",
        timeout=60_000,
    )
    cards = page.evaluate("() => [...document.querySelectorAll('[role=dialog] h3')].map(h => h.textContent.trim())")
    assert names <= set(cards), f"headings under '{pack}': {cards}"
    # every card is listed; newer frontends (1.49 with ComfyUI 0.33) draw only the images of the cards in view, so
    # the count asked for is a first screen's worth (each .jpg is fetched in tests/integration/test_workflow_templates)
    thumbnails = page.evaluate("() => document.querySelectorAll('[role=dialog] img').length")
    assert thumbnails >= min(6, len(names)), f"only {thumbnails} thumbnails shown"
    folder = Path(os.environ.get("FACECONTROL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "template_browser.png"))
    name = "face_adapter_reenactment" if "face_adapter_reenactment" in names else sorted(names)[0]
    dialog.locator("h3", has_text=name).first.click()
    expected = len(json.loads((REPO_ROOT / "example_workflows" / f"{name}.json").read_text())["nodes"])
    page.wait_for_function("(n) => window.app.graph._nodes.length === n", arg=expected, timeout=60_000)
    page.keyboard.press("Escape")
