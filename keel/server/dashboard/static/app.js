// keel's dashboard: theme, times, and the one live stream of this tab.
// Pages register handlers with keel.on(eventName, fn); the stream's events are JSON.
(function () {
  "use strict";
  const handlers = {};
  const keel = (window.keel = {
    on(name, fn) { (handlers[name] = handlers[name] || []).push(fn); },
    csrf() { const m = document.querySelector('meta[name="csrf-token"]'); return m ? m.content : ""; },
    showTimes,
    patch,
  });

  // --- theme: auto (the system's), light, dark
  function setTheme(t) { document.documentElement.dataset.theme = t; localStorage.setItem("keel-theme", t); }
  document.addEventListener("click", (e) => {
    if (e.target.id === "theme") {
      const order = ["auto", "light", "dark"];
      const now = document.documentElement.dataset.theme || "auto";
      setTheme(order[(order.indexOf(now) + 1) % order.length]);
      e.target.title = "theme: " + document.documentElement.dataset.theme;
    }
  });

  // --- times: stored and sent in UTC; shown in UTC, local time or relative, zone named
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  function mode() { return localStorage.getItem("keel-times") || "utc"; }
  function pad(n) { return String(n).padStart(2, "0"); }
  function relative(ms) {
    const s = Math.round((ms - Date.now()) / 1000), a = Math.abs(s);
    const [n, u] = a < 60 ? [a, "s"] : a < 3600 ? [Math.floor(a / 60), "m"] : a < 172800 ? [Math.floor(a / 3600), "h"] : [Math.floor(a / 86400), "d"];
    return s <= 0 ? `${n}${u} ago` : `in ${n}${u}`;
  }
  function showTimes(root) {
    const m = mode();
    (root || document).querySelectorAll("time[datetime]").forEach((el) => {
      const d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      const utc = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
      let text = utc;
      if (m === "local") {
        const name = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(d).find((p) => p.type === "timeZoneName");
        text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${name ? name.value : zone}`;
      } else if (m === "relative") {
        text = relative(d.getTime());
      }
      el.textContent = text;
      el.title = m === "utc" ? `${zone}: ${d.toLocaleString()}` : utc;
    });
  }
  document.addEventListener("change", (e) => {
    if (e.target.id === "time-mode") { localStorage.setItem("keel-times", e.target.value); showTimes(); }
  });
  setInterval(() => { if (mode() === "relative") showTimes(); }, 10000);
  document.addEventListener("htmx:afterSwap", (e) => showTimes(e.target));

  // --- patches: replace elements by id with server-rendered HTML
  function patch(items) {
    const missing = [];
    for (const item of items) {
      const el = document.getElementById(item.id);
      if (!el) { missing.push(item); continue; }
      const t = document.createElement("template");
      t.innerHTML = item.html.trim();
      const fresh = t.content.firstElementChild;
      if (!fresh) continue;
      el.replaceWith(fresh);
      fresh.classList.add("flash");
      showTimes(fresh);
      if (window.htmx) window.htmx.process(fresh);
    }
    return missing;
  }

  // --- the live stream: one EventSource per tab, resumed with Last-Event-ID
  function connect(url) {
    const badge = document.getElementById("live");
    let staleSince = null;
    function say(state, text) { if (badge) { badge.dataset.state = state; badge.textContent = text; } }
    const source = new EventSource(url);
    keel.source = source;
    source.onopen = () => { staleSince = null; say("live", "live"); };
    source.onerror = () => {
      if (!staleSince) {
        staleSince = new Date();
        say("stale", `stale since ${pad(staleSince.getHours())}:${pad(staleSince.getMinutes())}:${pad(staleSince.getSeconds())}`);
      }
      if (source.readyState === EventSource.CLOSED) setTimeout(() => connect(url), 3000);
    };
    const dispatch = (name) => (e) => {
      let data; try { data = JSON.parse(e.data); } catch (_) { return; }
      if (name === "patch") patch(data.items || []);
      (handlers[name] || []).forEach((fn) => fn(data));
    };
    for (const name of ["patch", "run", "nodes", "runs", "approvals", "throughput", "caught-up", "gone"]) source.addEventListener(name, dispatch(name));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const sel = document.getElementById("time-mode");
    if (sel) sel.value = mode();
    const t = document.getElementById("theme");
    if (t) t.title = "theme: " + (document.documentElement.dataset.theme || "auto");
    showTimes();
    const live = document.body.dataset.live;
    if (live) connect(live);
  });
})();
