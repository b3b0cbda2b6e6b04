"""The Compare tab's first minute, as a new visitor meets it: each group has its own examples, the
tab opens on the first one and compares it without a click, and switching groups switches the
examples, the input and the results.

Checked three ways: the page's initial state as gradio_client reads it (``Client.config``), the
handlers behind the tab's events, and the page in Debian's chromium. The registry has two groups
with examples of their own (label maps; edge maps) and models outside any group.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client
from PIL import Image, ImageOps

from bench.chromium import assert_no_problems, canvas_page
from bench.serving import Server, serve
from tests.app_fixtures import label_image, write_test_registry

REGISTRY = """
[[model]]
id = "edges-alone"
name = "Edges, in no group"
path = "models/edges"
input = "edges"
examples = ["examples/edges/*.png"]

[[model]]
id = "labels-a"
name = "Labels A"
path = "models/l0"
group = "label study"
variant = "variant 1x1"
examples = ["examples/labels/*.png"]

[[model]]
id = "labels-b"
name = "Labels B"
path = "models/l1"
group = "label study"
variant = "variant 70x70"
examples = ["examples/labels/*.png"]

[[model]]
id = "edges-a"
name = "Edges A"
path = "models/edges"
input = "edges"
group = "edge pair"
variant = "edges first"
examples = ["examples/edges/*.png"]

[[model]]
id = "edges-b"
name = "Edges B"
path = "models/photo"
input = "edges"
group = "edge pair"
variant = "edges second"
"""
LABEL_EXAMPLES = 3  # the edge examples of write_test_registry: 2


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compare")
    path = write_test_registry(folder)  # the tiny models and two edge-map examples
    labels = folder / "examples" / "labels"
    labels.mkdir(parents=True)
    for i in range(LABEL_EXAMPLES):
        ImageOps.mirror(label_image(128)).rotate(90 * i).save(labels / f"{i}.png")
    path.write_text(REGISTRY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server(registry: Path) -> Iterator[Server]:
    with serve(registry, remote="skip", browser_mode=False) as running:
        yield running


def _pixels(image: str | Path | Image.Image) -> np.ndarray:
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    return np.asarray(image.convert("RGB"))


def _component(client: Client, elem_id: str) -> dict:
    found = [c for c in client.config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert len(found) == 1, elem_id
    return found[0]["props"]


def test_default_group_opens_with_its_own_example_input(server: Server, registry: Path) -> None:
    client = Client(server.url, verbose=False)
    group = next(c for c in client.config["components"] if c["props"].get("label") == "Group")
    assert group["props"]["value"] == "label study"
    first = registry.parent / "examples" / "labels" / "0.png"
    value = _component(client, "compare-input").get("value")
    # Before: the Compare input was empty (and the only examples shown were the default
    # model's, for the Draw tab).
    assert value is not None, "the Compare input must start with the group's first example"
    shown = Image.open(io.BytesIO(httpx.get(value["url"], timeout=30).raise_for_status().content))
    assert np.array_equal(_pixels(shown), _pixels(first))
    gallery = _component(client, "compare-examples")["value"]
    assert gallery is not None and len(gallery) == LABEL_EXAMPLES, gallery


def test_opening_the_tab_compares_and_switching_groups_switches_examples(
    server: Server, registry: Path
) -> None:
    app = server.app
    labels = app.compare_examples("label study")
    assert len(labels) == LABEL_EXAMPLES
    results = app.open_compare(labels[0], "label study", None)
    assert [caption.split(" · ")[0] for _, caption in results] == ["variant 1x1", "variant 70x70"]
    remembered = len(app._compared)
    assert app.open_compare(labels[0], "label study", None) == results  # the next visitor's
    assert len(app._compared) == remembered  # computed once, not once per visitor
    again = app.open_compare(labels[0], "label study", results)  # already shown: nothing to do
    assert not isinstance(again, list)

    examples, first, results = app.on_group("edge pair")
    edges = registry.parent / "examples" / "edges"
    assert len(examples["value"]) == 2 and examples["visible"]
    assert np.array_equal(_pixels(first), _pixels(sorted(edges.glob("*.png"))[0]))
    assert [caption.split(" · ")[0] for _, caption in results] == ["edges first", "edges second"]
    assert app.compare_examples("nothing") == []


def test_compare_tab_in_the_browser(server: Server) -> None:
    with canvas_page(server.url) as page:
        # The default model's examples, for drawing (Gradio may render them just after the canvas).
        page.locator("#examples").wait_for(state="visible")
        page.get_by_role("tab", name="Compare").click()
        results = page.locator("#compare-gallery img")
        results.nth(1).wait_for(timeout=60_000)  # compared on opening, without a click
        assert "variant 70x70" in page.locator("#compare-gallery").inner_text()
        assert page.locator("#compare-examples img").count() == LABEL_EXAMPLES
        page.locator("#examples").wait_for(state="hidden")  # no Draw examples on this tab
        page.get_by_label("Group", exact=True).first.click()
        page.get_by_role("option", name="edge pair").first.click()
        page.wait_for_function(
            "() => document.querySelectorAll('#compare-examples img').length === 2"
        )
        page.get_by_text("edges second").first.wait_for(timeout=60_000)
        page.get_by_role("tab", name="Draw").click()
        page.locator("#examples").wait_for(state="visible")
        assert_no_problems(page)
