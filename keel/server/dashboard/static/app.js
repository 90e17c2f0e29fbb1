// keel's dashboard: theme, times, failed requests said, and the one live stream of
// this tab. Pages register handlers with keel.on(eventName, fn); the stream's events
// are JSON. Loaded without defer in <head> (the theme is set before the page is drawn):
// nothing here may touch the body before DOMContentLoaded. The pages' Content Security
// Policy runs no inline script: listeners live in these files, never in attributes.
(function () {
  "use strict";
  // the theme first, before anything can fail (storage may be refused: then the system's)
  let stored = null;
  try { stored = localStorage.getItem("keel-theme"); } catch (_) { stored = null; }
  document.documentElement.dataset.theme = stored || "auto";
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

  // --- htmx: an element with data-remove-after-request goes once its request has
  // succeeded (a "more" button; a value: the closest ancestor matching it instead)
  document.addEventListener("htmx:afterRequest", (e) => {
    const el = e.detail.elt;
    if (!e.detail.successful || !el || !el.hasAttribute || !el.hasAttribute("data-remove-after-request")) return;
    const which = el.getAttribute("data-remove-after-request");
    const gone = which ? el.closest(which) : el;
    if (gone) gone.remove();
  });

  // --- Enter on a focusable row that loads something (tr[tabindex][hx-get]) clicks it:
  // keyboard users choose it as a click does (an hx-trigger filter would need eval)
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.matches && e.target.matches("tr[tabindex][hx-get]")) {
      e.preventDefault();
      e.target.click();
    }
  });

  // --- a failed htmx request says why (the error page's words), in a banner
  function showProblem(text) {
    const banner = document.getElementById("problem-banner");
    if (!banner) return;
    banner.querySelector(".problem-text").textContent = text;
    banner.hidden = false;
  }
  function problemOf(xhr) {
    const type = xhr.getResponseHeader("Content-Type") || "";
    let detail = "";
    if (type.includes("json")) {
      try { detail = String(JSON.parse(xhr.responseText).detail || ""); } catch (_) { detail = ""; }
    } else if (type.includes("html") && xhr.responseText) {
      const found = new DOMParser().parseFromString(xhr.responseText, "text/html").querySelector(".problem");
      detail = found ? found.textContent.trim() : "";
    }
    const status = xhr.status + (xhr.statusText ? " " + xhr.statusText : "");
    return detail ? `${detail} (${status})` : `The request failed: ${status}.`;
  }
  document.addEventListener("htmx:responseError", (e) => showProblem(problemOf(e.detail.xhr)));
  document.addEventListener("htmx:sendError", () => showProblem("The server did not answer: check the connection, then try again."));
  document.addEventListener("click", (e) => {
    if (e.target.closest && e.target.closest("[data-dismiss-problem]")) document.getElementById("problem-banner").hidden = true;
  });

  // --- the live stream: one EventSource per tab, resumed with Last-Event-ID. The server
  // ends it with `signed-out` when the session ends. A stream refused (the browser then
  // stops retrying) or failing again and again asks /ui/session whether the session
  // holds: no, the sign-in form; yes (or no answer: the server is away), connect again.
  const PROBE_EVERY_ERRORS = 5;
  function signIn() {
    location.assign("/ui/sign-in?next=" + encodeURIComponent(location.pathname + location.search));
  }
  let lastId = ""; // the last event id received: where a new stream starts from
  function from(url) {
    if (!lastId) return url;
    const u = new URL(url, window.location.href);
    u.searchParams.set("from", lastId);
    return u.pathname + u.search;
  }
  function connect(url) {
    const badge = document.getElementById("live");
    let staleSince = null;
    let errors = 0;
    let probing = false;
    function say(state, text) { if (badge) { badge.dataset.state = state; badge.textContent = text; } }
    const source = new EventSource(url);
    keel.source = source;
    function again() { if (source.readyState === EventSource.CLOSED) setTimeout(() => connect(from(url)), 3000); }
    function probe() {
      if (probing) return;
      probing = true;
      fetch("/ui/session", { headers: { "HX-Request": "true" }, credentials: "same-origin", redirect: "manual", cache: "no-store" })
        .then((r) => {
          if (r.status === 401 || r.type === "opaqueredirect") { source.close(); signIn(); } else again();
        })
        .catch(again)
        .finally(() => { probing = false; });
    }
    source.onopen = () => { staleSince = null; errors = 0; say("live", "live"); };
    source.onerror = () => {
      errors += 1;
      if (!staleSince) {
        staleSince = new Date();
        say("stale", `stale since ${pad(staleSince.getHours())}:${pad(staleSince.getMinutes())}:${pad(staleSince.getSeconds())}`);
      }
      if (source.readyState === EventSource.CLOSED || errors % PROBE_EVERY_ERRORS === 0) probe();
    };
    source.addEventListener("signed-out", () => { source.close(); signIn(); });
    const dispatch = (name) => (e) => {
      if (e.lastEventId) lastId = e.lastEventId;
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
