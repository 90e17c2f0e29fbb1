// The workflow editor: a plain textarea with line numbers, checked by the server as you
// type (300 ms after the last key; an older answer never replaces a newer one), the
// problems listed by line and column (a click moves the caret there), the graph redrawn
// from the server's positioned elements (window.keelEditorGraph is its cytoscape).
(function () {
  "use strict";
  const area = document.getElementById("definition");
  if (!area) return;
  const gutter = document.getElementById("gutter");
  const panel = document.getElementById("check");
  const graphBox = document.getElementById("graph");
  const deploy = document.getElementById("deploy");
  const form = document.getElementById("editor-form");
  const DELAY = 300;
  let timer = null, asked = 0, controller = null, dirty = false, leaving = false, escaped = false;
  let shownLines = -1, shownBad = "";

  // --- line numbers, the lines with problems marked
  function badLines() {
    return [...panel.querySelectorAll("#check-result > .problems:not(.warnings) .goto")].map((b) => b.dataset.line);
  }
  function renumber() {
    const count = area.value.split("\n").length;
    const bad = badLines();
    const key = bad.join(",");
    if (count === shownLines && key === shownBad) return;
    shownLines = count; shownBad = key;
    const marked = new Set(bad);
    const rows = document.createDocumentFragment();
    for (let n = 1; n <= count; n++) {
      const row = document.createElement("div");
      row.textContent = String(n);
      if (marked.has(String(n))) row.className = "bad";
      rows.append(row);
    }
    gutter.replaceChildren(rows);
    gutter.scrollTop = area.scrollTop;
  }
  area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });

  // --- Tab inserts two spaces; Esc then Tab moves on (the keyboard is never trapped)
  area.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { escaped = true; return; }
    if (e.key !== "Tab" || e.shiftKey || e.ctrlKey || e.altKey || e.metaKey || escaped) { escaped = false; return; }
    e.preventDefault();
    // execCommand keeps the browser's undo history; setRangeText where it is gone
    if (!document.execCommand || !document.execCommand("insertText", false, "  ")) {
      area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end");
      area.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });

  // --- checking: the newest text only, its answer only
  area.addEventListener("input", () => {
    dirty = true;
    renumber();
    panel.classList.add("pending");
    clearTimeout(timer);
    timer = setTimeout(check, DELAY);
  });

  async function check() {
    const mine = ++asked;
    if (controller) controller.abort();
    controller = new AbortController();
    let answer;
    try {
      const response = await fetch(area.dataset.check, {
        method: "POST", credentials: "same-origin", signal: controller.signal,
        // HX-Request: a lapsed session answers 401 with where to sign in, not a redirect
        headers: { "X-CSRF-Token": keel.csrf(), "HX-Request": "true" },
        body: new URLSearchParams({ definition: area.value }),
      });
      const signIn = response.headers.get("HX-Redirect");
      if (response.status === 401 && signIn) { leaving = true; window.location.href = signIn; return; }
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      answer = await response.json();
    } catch (error) {
      if (error.name === "AbortError" || mine !== asked) return;
      const p = document.createElement("p");
      p.className = "problem";
      p.textContent = `Could not check the text: ${error.message}. It is checked again as you type.`;
      panel.replaceChildren(p);
      panel.classList.remove("pending");
      return;
    }
    if (mine !== asked) return;
    show(answer);
  }

  function show(answer) {
    panel.innerHTML = answer.html; // rendered and escaped by the server
    panel.classList.remove("pending");
    if (deploy) deploy.disabled = !answer.valid;
    if (answer.elements) draw(answer.elements);
    else graphBox.classList.add("stale");
    renumber();
  }

  function draw(elements) {
    if (window.keelEditorGraph) window.keelEditorGraph.destroy();
    window.keelEditorGraph = window.keelGraph.draw(graphBox, elements);
    graphBox.classList.remove("stale");
  }

  // --- a problem's position: the caret goes there
  function moveTo(line, column) {
    const rows = area.value.split("\n");
    const row = Math.min(Math.max(line, 1), rows.length) - 1;
    let offset = 0;
    for (let i = 0; i < row; i++) offset += rows[i].length + 1;
    offset += Math.min(Math.max(column - 1, 0), rows[row].length);
    area.focus();
    area.setSelectionRange(offset, offset);
    const height = parseFloat(getComputedStyle(area).lineHeight) || 18;
    const top = row * height;
    if (top < area.scrollTop || top > area.scrollTop + area.clientHeight - 2 * height) {
      area.scrollTop = Math.max(0, top - 3 * height);
    }
  }
  panel.addEventListener("click", (e) => {
    const go = e.target.closest(".goto");
    if (go) moveTo(Number(go.dataset.line), Number(go.dataset.column) || 1);
  });

  // --- leaving with edits not deployed asks first
  document.querySelectorAll(".start-link, .start-form").forEach((el) => {
    el.addEventListener(el.tagName === "FORM" ? "submit" : "click", (e) => {
      if (dirty && !window.confirm("Leave this text? Your edits are not deployed.")) e.preventDefault();
      else leaving = true;
    });
  });
  if (form) form.addEventListener("submit", () => { leaving = true; });
  window.addEventListener("beforeunload", (e) => { if (dirty && !leaving) { e.preventDefault(); e.returnValue = ""; } });

  // --- the page as drawn: the server checked the starting text already
  renumber();
  const first = JSON.parse(document.getElementById("graph-elements").textContent || "null");
  if (first) draw(first);
})();
