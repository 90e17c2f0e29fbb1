"""The vendored libraries work in Chromium as the dashboard loads them (plain script tags,
no build step), and the ``served`` fixture gives a real server the browser can reach.

Nothing here waits on a clock: where Chromium draws on its next frame, the test waits
for the drawing with Playwright's own polling."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from tests.browser.conftest import Served

if TYPE_CHECKING:  # playwright missing: the fixtures skip (or fail in CI), not the import
    from playwright.sync_api import Page

VENDOR = Path(__file__).parents[2] / "keel" / "server" / "dashboard" / "static" / "vendor"
#: in the order a page loads them: the SSE extension registers itself with htmx
SCRIPTS = ("htmx.min.js", "sse.js", "cytoscape.min.js", "uPlot.iife.min.js")


def load_vendored(page: Page) -> list[str]:
    """Load every vendored script and style into ``page``; the page's uncaught errors."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content("<!doctype html><html><body></body></html>")
    for name in SCRIPTS:
        page.add_script_tag(path=VENDOR / name)
    page.add_style_tag(path=VENDOR / "uPlot.min.css")
    return errors


def test_each_library_defines_its_global_without_an_error(page: Page) -> None:
    errors = load_vendored(page)
    found = page.evaluate("""() => ({
        htmx: typeof window.htmx?.process, version: window.htmx?.version,
        sse: typeof window.htmx?.createEventSource,
        cytoscape: typeof window.cytoscape, uPlot: typeof window.uPlot,
    })""")
    assert found == {"htmx": "function", "version": "2.0.11", "sse": "function",
                     "cytoscape": "function", "uPlot": "function"}  # fmt: skip
    assert errors == []


def test_uplot_draws_a_chart_styled_by_its_css(page: Page) -> None:
    load_vendored(page)
    page.evaluate("""() => new uPlot(
        {width: 400, height: 200, series: [{}, {stroke: "red"}]},
        [[1, 2, 3], [1, 4, 9]], document.body)""")
    drawn = page.evaluate("""() => {
        const chart = document.querySelector(".uplot");
        return {canvases: chart.querySelectorAll("canvas").length,
                wrap: getComputedStyle(chart.querySelector(".u-wrap")).position};
    }""")
    assert drawn == {"canvases": 1, "wrap": "relative"}  # "relative": from uPlot.min.css


#: where the server puts each node (a preset layout: cytoscape computes nothing)
PLACED = {"a": {"x": 100, "y": 80}, "b": {"x": 300, "y": 80}, "c": {"x": 200, "y": 260}}


def test_cytoscape_draws_three_nodes_where_the_server_placed_them(page: Page) -> None:
    load_vendored(page)
    page.evaluate(
        """(placed) => {
        const box = document.createElement("div");
        box.id = "graph";
        box.style.cssText = "width: 600px; height: 400px; position: absolute; left: 0; top: 0";
        document.body.append(box);
        const nodes = Object.entries(placed).map(([id, position]) => ({data: {id}, position}));
        window.cy = cytoscape({
            container: box, zoom: 1, pan: {x: 0, y: 0},
            layout: {name: "preset", fit: false},
            style: [{selector: "node", style: {"background-color": "#0000ff", width: 30,
                                               height: 30}}],
            elements: [...nodes, {data: {id: "ab", source: "a", target: "b"}},
                       {data: {id: "bc", source: "b", target: "c"}}],
        });
    }""",
        PLACED,
    )
    graph: dict[str, Any] = page.evaluate("""() => ({
        nodes: cy.nodes().length, edges: cy.edges().length,
        rendered: Object.fromEntries(cy.nodes().map(n => [n.id(), n.renderedPosition()])),
    })""")
    assert graph["nodes"] == 3
    assert graph["edges"] == 2
    assert graph["rendered"] == PLACED
    # drawn there: a node's centre is painted on one of cytoscape's canvases (on a
    # later frame, hence the wait), the empty corner of the graph is not
    painted = """([x, y]) => [...document.querySelectorAll("#graph canvas")].some(canvas => {
        const scale = canvas.width / canvas.clientWidth;
        const pixel = canvas.getContext("2d").getImageData(x * scale, y * scale, 1, 1).data;
        return pixel[3] > 0 && pixel[2] > 200 && pixel[0] < 50;
    })"""
    for position in PLACED.values():
        page.wait_for_function(painted, arg=[position["x"], position["y"]])
    assert page.evaluate(painted, [580, 380]) is False


@pytest.mark.slow
def test_served_answers_the_browser_and_the_api_and_comes_back_after_a_restart(
    served: Served, page: Page
) -> None:
    health = page.goto(f"{served.base_url}/health")
    assert health is not None
    assert health.status == 200
    with httpx2.Client(base_url=served.base_url, trust_env=False, timeout=30.0) as client:
        assert client.get("/runs").status_code == 401  # the token is what lets it in
        runs = client.get("/runs", headers=served.headers("admin"))
        assert runs.status_code == 200, runs.text
        assert runs.json()["runs"] == []
        listed = client.get("/workflows", headers=served.headers("viewer")).json()
        assert {w["workflow"] for w in listed["workflows"]} == {"claim", "document_intake", "trip"}
        assert set(served.tokens) == {"admin", "operator", "approver", "viewer"}
        served.restart()
        again = client.get("/runs", headers=served.headers("admin"))
        assert again.status_code == 200, again.text  # same port, same database, same tokens
