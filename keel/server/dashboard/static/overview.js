// The overview's throughput chart: runs started, ended and failed per hour, drawn with
// uPlot from the JSON the page embeds (#ov-throughput); the live stream's "throughput"
// event redraws it. The numbers around it are patched by app.js (event "patch").
(function () {
  "use strict";
  let plot = null;
  let data = null;
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888"; }
  function columns(d) { return [d.x || [], d.started || [], d.ended || [], d.failed || []]; }
  function draw() {
    const box = document.getElementById("ov-chart");
    if (!box || !window.uPlot || !data || !data.x) return;
    if (plot) { plot.destroy(); plot = null; }
    const width = Math.max(240, box.clientWidth);
    const opts = {
      width, height: 220,
      scales: { x: { time: true } },
      series: [
        { label: "hour (local)" },
        { label: "started", stroke: css("--run"), width: 2, points: { show: false } },
        { label: "ended", stroke: css("--ok"), width: 2, points: { show: false } },
        { label: "failed", stroke: css("--fail"), width: 2, dash: [6, 4], points: { show: false } },
      ],
      axes: [
        { stroke: css("--muted"), grid: { stroke: css("--line") } },
        { stroke: css("--muted"), grid: { stroke: css("--line") }, label: "runs" },
      ],
    };
    plot = new window.uPlot(opts, columns(data), box);
  }
  function load() {
    const el = document.getElementById("ov-throughput");
    if (!el) return;
    try { data = JSON.parse(el.textContent || "{}"); } catch (_) { data = null; }
    draw();
  }
  document.addEventListener("DOMContentLoaded", () => {
    load();
    if (window.keel) window.keel.on("throughput", (fresh) => { data = fresh; draw(); });
    let pending = null;
    window.addEventListener("resize", () => { clearTimeout(pending); pending = setTimeout(draw, 150); });
    new MutationObserver(draw).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  });
})();
