// The workflow page: the graph of the version shown, at the positions the server laid
// out (keel.spec.layout), drawn by graph.js; redrawn in the colours of a new theme. The
// start form (folded until opened) is drawn from the input schema of the version shown:
// choosing another version in it shows that version (its form, its graph), form open.
(function () {
  "use strict";
  document.addEventListener("change", (e) => {
    const select = e.target;
    if (!(select instanceof HTMLSelectElement) || select.id !== "start-version") return;
    if (select.value === select.dataset.shown) return;
    const url = new URL(window.location.href);
    url.search = new URLSearchParams({ version: select.value }).toString();
    url.hash = "wf-start";
    window.location.assign(url.toString());
  });
  document.addEventListener("DOMContentLoaded", () => {
    const start = document.getElementById("wf-start");
    if (start && window.location.hash === "#wf-start") start.open = true;
    const box = document.getElementById("wf-graph");
    const source = document.getElementById("wf-elements");
    if (!box || !source || !window.keelGraph || !window.cytoscape) return;
    let elements;
    try { elements = JSON.parse(source.textContent || "[]"); } catch (_) { return; }
    const cy = window.keelGraph.draw(box, elements, {
      onTap(id) {
        const row = document.querySelector(`#wf-grid tr[data-node="${CSS.escape(id)}"]`);
        if (row) { row.scrollIntoView({ block: "nearest" }); row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash"); }
      },
    });
    new MutationObserver(() => window.keelGraph.restyle(cy)).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  });
})();
