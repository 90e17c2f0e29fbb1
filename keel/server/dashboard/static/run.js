// The run page: the graph (drawn at the server's positions, states live from the
// stream's `nodes` events), choosing a node (graph or steps table) to see its attempts,
// and the action dialogs (their preview of what will run again, the skip's JSON check).
(function () {
  "use strict";
  let cy = null;
  let selected = null;

  function runId() { return document.getElementById("run-graph").dataset.runId; }

  function draw(graph) {
    const box = document.getElementById("run-graph");
    if (!box || !window.keelGraph || !window.cytoscape) return;
    if (cy) cy.destroy();
    cy = window.keelGraph.draw(box, graph.elements, { onTap: choose });
    if (graph.focus) cy.getElementById(graph.focus).addClass("focus");
    if (selected) cy.getElementById(selected).select();
    box.dataset.drawn = String(cy.nodes().length);
    // when it was drawn, since the page's navigation started (bench.run_page reads it)
    box.dataset.drawnMs = String(Math.round(performance.now()));
  }

  function mark() {
    document.querySelectorAll("#run-steps tr.selected").forEach((r) => r.classList.remove("selected"));
    const row = selected && document.getElementById("step-" + selected);
    if (row) row.classList.add("selected");
    return row;
  }

  function choose(node) {
    selected = node;
    const row = mark();
    if (row) row.scrollIntoView({ block: "nearest" });
    if (window.htmx) {
      window.htmx.ajax("GET", `/ui/runs/${runId()}/nodes/${encodeURIComponent(node)}`, { target: "#node-panel", swap: "innerHTML" });
    }
  }

  document.addEventListener("click", (e) => {
    const row = e.target.closest("#run-steps tbody tr[data-node]");
    if (row) {
      selected = row.dataset.node;
      mark();
      if (cy) { cy.elements().unselect(); cy.getElementById(selected).select(); }
    }
    const all = e.target.closest("#run-graph-all");
    if (all) {
      all.disabled = true;
      fetch(all.dataset.url, { credentials: "same-origin" }).then((r) => r.json()).then((graph) => {
        draw(graph);
        document.getElementById("run-graph-note").textContent = `${graph.total} nodes`;
        all.remove();
      }).catch(() => { all.disabled = false; });
    }
    const open = e.target.closest("[data-dialog]");
    if (open) {
      const dialog = document.getElementById(open.dataset.dialog);
      if (dialog) {
        const node = dialog.querySelector('input[name="node"]');
        if (node && selected && !node.value) node.value = selected;
        showPreview(dialog.querySelector("form"));
        dialog.showModal();
      }
    }
    if (e.target.closest("[data-close]")) e.target.closest("dialog").close();
  });

  // --- the dialogs' preview: what the action would run again, from the server
  let timer = null;
  function showPreview(form) {
    const node = form.querySelector('input[name="node"]');
    const box = form.querySelector("[data-preview-box]");
    if (!box || (node && !node.value.trim())) return;
    const url = node ? `${form.dataset.preview}&node=${encodeURIComponent(node.value.trim())}` : form.dataset.preview;
    fetch(url, { credentials: "same-origin" }).then((r) => r.text()).then((html) => { box.innerHTML = html; });
  }
  document.addEventListener("input", (e) => {
    const form = e.target.closest("form[data-preview]");
    if (form && e.target.name === "node") {
      clearTimeout(timer);
      timer = setTimeout(() => showPreview(form), 250);
    }
    if (e.target.matches("textarea[data-json]")) {
      const error = e.target.form.querySelector("[data-json-error]");
      let problem = "";
      try { JSON.parse(e.target.value); } catch (err) { problem = "Not JSON: " + err.message; }
      e.target.setCustomValidity(problem);
      if (error) { error.textContent = problem; error.hidden = !problem; }
    }
  });

  // what the graph shows of a node (for browser tests and the console)
  window.keelRun = { state(node) { const n = cy && cy.getElementById(node); return n && !n.empty() ? n.data("state") : null; } };

  // --- live: node states from the stream; patched rows keep the selection
  window.keel.on("nodes", (data) => { if (cy) window.keelGraph.setStates(cy, data.nodes || {}); });
  window.keel.on("patch", () => mark());

  document.addEventListener("DOMContentLoaded", () => {
    const el = document.getElementById("run-graph-data");
    if (el) draw(JSON.parse(el.textContent));
    const dark = window.matchMedia("(prefers-color-scheme: dark)");
    const restyle = () => { if (cy) window.keelGraph.restyle(cy); };
    dark.addEventListener("change", restyle);
    new MutationObserver(restyle).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  });
})();
