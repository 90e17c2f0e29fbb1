// Drawing a workflow's graph with cytoscape, at the positions the server computed once per
// version (keel.spec.layout): no layout runs in the browser, so a big graph draws at once.
// keelGraph.draw(container, elements, {onTap}) -> cy; keelGraph.setStates(cy, states)
// where states = {nodeId: {state: "succeeded"|..., counts: {state: n}}} (a map node shows
// its items' counts). States are told by colour and by an icon in the label.
(function () {
  "use strict";
  const ICONS = { succeeded: "✓", failed: "✗", failing: "✗", running: "▶", started: "▶", waiting: "◷",
    paused: "‖", retrying: "↻", pending: "○", ready: "○", queued: "○", cancelled: "⊘", skipped: "⤼" };
  const SHAPES = { task: "round-rectangle", approval: "diamond", wait: "ellipse", signal: "ellipse",
    timer: "ellipse", subworkflow: "cut-rectangle", subflow: "cut-rectangle", map: "barrel", branch: "hexagon" };
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888"; }
  function colour(state) {
    return { succeeded: css("--ok"), failed: css("--fail"), failing: css("--fail"), running: css("--run"),
      started: css("--run"), waiting: css("--wait"), paused: css("--wait"), retrying: css("--retry"),
      cancelled: css("--cancel"), skipped: css("--skip") }[state] || css("--pending");
  }
  function label(data) {
    const icon = ICONS[data.state] || "";
    let text = (icon ? icon + " " : "") + (data.label || data.id);
    if (data.counts) {
      const parts = Object.entries(data.counts).filter(([, n]) => n > 0).map(([s, n]) => `${ICONS[s] || s} ${n}`);
      if (parts.length) text += "\n" + parts.join("  ");
    }
    return text;
  }
  function style() {
    return [
      { selector: "node", style: {
        shape: (n) => SHAPES[n.data("kind")] || "round-rectangle",
        width: (n) => n.data("w") || 120, height: (n) => n.data("h") || 36,
        label: (n) => label(n.data()), "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
        "font-size": 11, color: css("--fg"), "background-color": css("--card"),
        "border-width": 2, "border-color": (n) => colour(n.data("state")),
      } },
      { selector: "node[state]", style: { "background-color": (n) => colour(n.data("state")), "background-opacity": 0.18 } },
      { selector: "node.focus", style: { "border-width": 4 } },
      { selector: "edge", style: {
        width: 1.5, "line-color": css("--edge"), "target-arrow-color": css("--edge"),
        "target-arrow-shape": "triangle", "curve-style": "bezier",
      } },
      { selector: 'edge[kind = "failure"], edge[kind = "timeout"]', style: { "line-style": "dashed", "line-color": css("--fail"), "target-arrow-color": css("--fail") } },
      { selector: 'edge[kind = "order"]', style: { "line-style": "dotted" } },
    ];
  }
  window.keelGraph = {
    draw(container, elements, opts) {
      const cy = window.cytoscape({ container, elements, layout: { name: "preset" }, style: style(),
        wheelSensitivity: 0.3, minZoom: 0.05, maxZoom: 3, boxSelectionEnabled: false, autoungrabify: true });
      cy.fit(undefined, 20);
      if (opts && opts.onTap) cy.on("tap", "node", (e) => opts.onTap(e.target.id()));
      return cy;
    },
    setStates(cy, states) {
      cy.batch(() => {
        for (const [id, s] of Object.entries(states)) {
          const n = cy.getElementById(id);
          if (!n || n.empty()) continue;
          n.data("state", s.state);
          if (s.counts) n.data("counts", s.counts);
        }
      });
    },
    restyle(cy) { cy.style(style()); },
  };
})();
