// The approvals inbox: follow the live stream's `approvals` events, keep what a person
// is typing into a decision's form, and mark approvals overdue as time passes. The
// forms themselves are checked before they are sent by schema_form.js.
(function () {
  "use strict";

  // a form someone has typed into is kept when the list is redrawn
  for (const kind of ["input", "change"]) {
    document.addEventListener(kind, (e) => {
      const form = e.target.closest && e.target.closest("form.decide");
      if (form) form.dataset.dirty = "1";
    });
  }

  // --- overdue: marked as time passes, not only when the page was drawn
  function markOverdue(root) {
    const now = Date.now() / 1000;
    for (const el of (root || document).querySelectorAll("article.approval[data-due]")) {
      el.classList.toggle("overdue", Number(el.dataset.due) <= now);
    }
  }
  setInterval(markOverdue, 15000);

  // --- the live stream: approvals decided elsewhere leave, new ones join; an approval
  // whose form a person is filling in is kept as it is
  function fresh(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }
  function editing(el) {
    const form = el.querySelector("form.decide");
    return !!form && (form.dataset.dirty === "1" || form.contains(document.activeElement) || !!form.querySelector(".field-error:not(:empty), .form-problem"));
  }
  window.keel.on("approvals", (data) => {
    const list = document.getElementById("approvals-list");
    if (!list) return;
    window.keel.patch([{ id: "approvals-tabs", html: data.tabs }, ...(data.more ? [{ id: "approvals-more", html: data.more }] : [])]);
    const wanted = new Set(data.items.map((item) => item.id));
    const notice = document.getElementById("approvals-notice");
    for (const el of [...list.querySelectorAll(":scope > article.approval")]) {
      if (wanted.has(el.id)) continue;
      if (editing(el) && notice) {
        const title = el.querySelector("h2")?.textContent || "An approval";
        notice.textContent = `${title} was decided elsewhere or its run ended.`;
      }
      el.remove();
    }
    let previous = null;
    for (const item of data.items) {
      let el = document.getElementById(item.id);
      if (!el || (el.dataset.key !== item.key && !editing(el))) {
        const made = fresh(item.html);
        if (!made) continue;
        if (el) el.replaceWith(made);
        made.classList.add("flash");
        el = made;
        window.keel.schemaForm.prepare(el);
        markOverdue(el);
        window.keel.showTimes(el);
      }
      const at = previous ? previous.nextElementSibling : list.firstElementChild;
      if (at !== el) list.insertBefore(el, at);
      previous = el;
    }
    const empty = document.getElementById("approvals-empty");
    if (empty) empty.hidden = data.items.length > 0;
  });

  document.addEventListener("DOMContentLoaded", () => markOverdue(document));
})();
