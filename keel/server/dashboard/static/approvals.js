// The approvals inbox: check a decision's form against its JSON Schema before it is
// sent, follow the live stream's `approvals` events, and mark approvals overdue as
// time passes.
//
// The schema subset checked here is the one the server draws controls for
// (keel/server/dashboard/schema_form.py): each field's wrapper carries its schema in
// data-schema. The server checks the data again with jsonschema; this only keeps a
// form that would be refused from going out, saying why next to the field.
(function () {
  "use strict";

  // --- reading a field's value as the server will (an empty control: not given)
  function controls(field) {
    return [...field.querySelectorAll("input, select, textarea")].filter((el) => el.closest("[data-field]") === field);
  }
  function valueOf(field) {
    const kind = field.dataset.kind, els = controls(field);
    if (kind === "checkbox") return { given: true, value: els[0].checked };
    if (kind === "choices") {
      const chosen = els.filter((el) => el.checked).map((el) => JSON.parse(el.value));
      return { given: chosen.length > 0, value: chosen };
    }
    const text = els[0].value;
    if (els[0].validity && els[0].validity.badInput) return { given: true, problem: "must be a number" };
    if (text === "") return { given: false };
    if (kind === "select") return { given: true, value: JSON.parse(text) };
    if (kind === "number") {
      const n = Number(text.trim());
      if (text.trim() === "" || !Number.isFinite(n)) return { given: true, problem: "must be a number" };
      return { given: true, value: n };
    }
    if (kind === "json") {
      try { return { given: true, value: JSON.parse(text) }; } catch (e) { return { given: true, problem: `not valid JSON: ${e.message}` }; }
    }
    return { given: true, value: text };
  }

  // --- the schema keywords the form supports
  const EMAIL = /^[^@\s]+@[^@\s]+$/;
  function isDate(s) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
    if (!m) return false;
    const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
    return d.getUTCFullYear() === +m[1] && d.getUTCMonth() === +m[2] - 1 && d.getUTCDate() === +m[3];
  }
  function typeOk(value, types) {
    if (!types) return true;
    const list = Array.isArray(types) ? types : [types];
    return list.some((t) =>
      t === "string" ? typeof value === "string"
        : t === "number" ? typeof value === "number"
          : t === "integer" ? Number.isInteger(value)
            : t === "boolean" ? typeof value === "boolean"
              : t === "array" ? Array.isArray(value)
                : t === "object" ? value !== null && typeof value === "object" && !Array.isArray(value)
                  : t === "null" ? value === null : true);
  }
  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
  function problemOf(value, s) {
    if (s.type && !typeOk(value, s.type)) {
      const t = Array.isArray(s.type) ? s.type.join(" or ") : s.type;
      return t === "integer" ? "must be a whole number" : `must be ${t === "array" || t === "object" || t === "integer" ? "an" : "a"} ${t}`;
    }
    if (Array.isArray(s.enum) && !s.enum.some((v) => same(v, value))) return `must be one of ${s.enum.map((v) => JSON.stringify(v)).join(", ")}`;
    if (typeof value === "number") {
      if (typeof s.minimum === "number" && value < s.minimum) return `must be at least ${s.minimum}`;
      if (typeof s.maximum === "number" && value > s.maximum) return `must be at most ${s.maximum}`;
      if (typeof s.exclusiveMinimum === "number" && value <= s.exclusiveMinimum) return `must be more than ${s.exclusiveMinimum}`;
      if (typeof s.exclusiveMaximum === "number" && value >= s.exclusiveMaximum) return `must be less than ${s.exclusiveMaximum}`;
      if (typeof s.multipleOf === "number" && s.multipleOf > 0) {
        const q = value / s.multipleOf;
        if (Math.abs(q - Math.round(q)) > 1e-9) return `must be a multiple of ${s.multipleOf}`;
      }
    }
    if (typeof value === "string") {
      const length = [...value].length; // code points, as JSON Schema counts
      if (typeof s.minLength === "number" && length < s.minLength) return `must be at least ${s.minLength} characters`;
      if (typeof s.maxLength === "number" && length > s.maxLength) return `must be at most ${s.maxLength} characters`;
      if (typeof s.pattern === "string") {
        let re = null;
        try { re = new RegExp(s.pattern, "u"); } catch (_) { /* the server checks it */ }
        if (re && !re.test(value)) return `must match the pattern ${s.pattern}`;
      }
      if (s.format === "email" && !EMAIL.test(value)) return "must be an email address";
      if (s.format === "date" && !isDate(value)) return "must be a date (YYYY-MM-DD)";
    }
    if (Array.isArray(value)) {
      if (typeof s.minItems === "number" && value.length < s.minItems) return `choose at least ${s.minItems}`;
      if (typeof s.maxItems === "number" && value.length > s.maxItems) return `choose at most ${s.maxItems}`;
      if (s.uniqueItems && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) return "must not repeat a value";
      if (s.items && typeof s.items === "object") {
        for (const item of value) { const p = problemOf(item, s.items); if (p) return p; }
      }
    }
    return null;
  }
  function problemOfField(field) {
    if (field.dataset.kind === "fieldset") return null;
    const schema = JSON.parse(field.dataset.schema || "{}");
    const found = valueOf(field);
    if (found.problem) return found.problem;
    if (!found.given) return field.hasAttribute("data-required") && !field.hasAttribute("data-nullable") ? "this field is required" : null;
    return problemOf(found.value, schema);
  }

  function show(field, message) {
    const error = field.querySelector(":scope > .field-error");
    if (error) error.textContent = message || "";
    for (const el of controls(field)) {
      if (message) el.setAttribute("aria-invalid", "true"); else el.removeAttribute("aria-invalid");
    }
  }
  /** Check every field of the form; true when it may be sent. */
  function validate(form) {
    let first = null;
    for (const field of form.querySelectorAll("[data-field]")) {
      if (field.dataset.kind === "fieldset") continue;
      const message = problemOfField(field);
      show(field, message);
      if (message && !first) first = field;
    }
    if (first) {
      const el = controls(first)[0];
      if (el) el.focus();
    }
    return !first;
  }

  function prepare(root) {
    for (const form of root.querySelectorAll("form.decide")) {
      form.noValidate = true; // this script says what is wrong, next to the field
    }
  }
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("form.decide")) return;
    if (e.submitter && e.submitter.hasAttribute("formnovalidate")) return; // reject
    if (!validate(form)) e.preventDefault();
  });
  // a field corrected: its message goes as soon as it is right
  document.addEventListener("input", (e) => {
    const form = e.target.closest && e.target.closest("form.decide");
    if (!form) return;
    form.dataset.dirty = "1";
    const field = e.target.closest("[data-field]");
    if (field && field.querySelector(":scope > .field-error")?.textContent) show(field, problemOfField(field));
  });
  document.addEventListener("change", (e) => {
    const form = e.target.closest && e.target.closest("form.decide");
    if (form) form.dataset.dirty = "1";
  });

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
    window.keel.patch([{ id: "approvals-tabs", html: data.tabs }]);
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
        prepare(el);
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

  document.addEventListener("DOMContentLoaded", () => { prepare(document); markOverdue(document); });
  // for tests and the curious: the checks this page makes
  window.keel.approvals = { validate, problemOf };
})();
