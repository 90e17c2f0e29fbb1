// Forms drawn from a JSON Schema (templates/schema_fields.html: an approval's decision,
// a run's input): check them before they are sent, saying what is wrong next to the
// field, as the server will (keel/server/dashboard/schema_form.py).
//
// The schema subset checked here is the one the server draws controls for: each
// field's wrapper carries its schema in data-schema. The server checks the data again
// with jsonschema; this only keeps a form that would be refused from going out. A form
// may also offer the whole data as one JSON text ([data-instead-of-fields] textarea):
// when that is filled in, it is the data, and only whether it is JSON is checked here.
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

  /** The whole-JSON box of a form, when it has one and it is filled in. */
  function wholeJson(form) {
    const box = form.querySelector("[data-instead-of-fields] textarea");
    return box && box.value.trim() !== "" ? box : null;
  }
  function showWhole(box, message) {
    const error = box.parentElement.querySelector(".field-error");
    if (error) error.textContent = message || "";
    if (message) box.setAttribute("aria-invalid", "true"); else box.removeAttribute("aria-invalid");
  }
  /** Check the form: its JSON box if filled in, else every field; true when it may be sent. */
  function check(form) {
    const box = wholeJson(form);
    if (!box) {
      const empty = form.querySelector("[data-instead-of-fields] textarea");
      if (empty) showWhole(empty, "");
      return validate(form);
    }
    for (const field of form.querySelectorAll("[data-field]")) show(field, null); // not read
    let problem = null;
    try { JSON.parse(box.value); } catch (e) { problem = `not valid JSON: ${e.message}`; }
    showWhole(box, problem);
    if (problem) box.focus();
    return !problem;
  }

  /** This script says what is wrong, next to the field: not the browser's bubbles. */
  function prepare(root) {
    for (const form of root.querySelectorAll("form.schema-form")) form.noValidate = true;
  }
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("form.schema-form")) return;
    if (e.submitter && e.submitter.hasAttribute("formnovalidate")) return; // e.g. reject
    if (!check(form)) e.preventDefault();
  });
  // a field corrected: its message goes as soon as it is right
  document.addEventListener("input", (e) => {
    if (!(e.target.closest && e.target.closest("form.schema-form"))) return;
    const field = e.target.closest("[data-field]");
    if (field && field.querySelector(":scope > .field-error")?.textContent) show(field, problemOfField(field));
  });
  document.addEventListener("DOMContentLoaded", () => prepare(document));

  window.keel.schemaForm = { check, validate, problemOf, prepare };
})();
