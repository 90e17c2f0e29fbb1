// The runs list: a banner for runs that now match but are not on the page (the page
// never reflows under the reader), and the counts kept current (at most every 10 s).
(function () {
  "use strict";
  const keel = window.keel;
  if (!keel) return;
  const COUNTS_EVERY = 10000;
  const announced = new Set();
  let uncounted = 0; // runs announced by number only (an event names at most 50)
  let countedAt = Date.now();
  let timer = null;

  function refreshCounts() {
    const counts = document.getElementById("run-counts");
    if (!counts || !window.htmx || timer) return;
    const wait = Math.max(0, countedAt + COUNTS_EVERY - Date.now());
    timer = setTimeout(() => {
      timer = null;
      countedAt = Date.now();
      window.htmx.trigger(counts, "refresh");
    }, wait);
  }

  keel.on("runs", (data) => {
    for (const id of data.ids || []) {
      if (!document.getElementById("run-" + id)) announced.add(id);
    }
    uncounted += data.more || 0;
    const banner = document.getElementById("runs-banner");
    if (banner && announced.size + uncounted) {
      const n = announced.size + uncounted;
      banner.querySelector("a").textContent = `${n} new or changed run${n === 1 ? " matches" : "s match"} — show`;
      banner.hidden = false;
    }
    refreshCounts();
  });
  keel.on("patch", refreshCounts);
})();
