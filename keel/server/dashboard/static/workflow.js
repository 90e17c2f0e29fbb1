// The workflow page: the graph of the version shown, at the positions the server laid
// out (keel.spec.layout), drawn by graph.js; redrawn in the colours of a new theme.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
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
