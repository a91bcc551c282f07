// The segment builder: rule rows (field, operator, value) in nested all / any / not groups,
// written to and read from the definition's JSON (which stays editable). No framework; the
// fields come from the page (learners.segments.rules.builder_schema, as JSON).
(function () {
  "use strict";
  const textarea = document.getElementById("id_definition");
  const root = document.getElementById("segment-builder");
  const schemaNode = document.getElementById("segment-builder-schema");
  if (!textarea || !root || !schemaNode) return;
  const fields = JSON.parse(schemaNode.textContent);
  const byField = Object.fromEntries(fields.map((f) => [f.field, f]));
  const OPS = {gte: "≥", gt: ">", lte: "≤", lt: "<", eq: "=", ne: "≠", in: "is one of", between: "between", exists: "exists"};
  const status = document.getElementById("segment-builder-status");

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
    });
    (children || []).forEach((c) => node.appendChild(c));
    return node;
  }
  function select(options, value, onchange, cls) {
    const s = el("select", {class: cls || ""});
    options.forEach(([v, label]) => { const o = el("option", {value: v, text: label}); if (String(v) === String(value)) o.selected = true; s.appendChild(o); });
    s.addEventListener("change", onchange);
    return s;
  }
  function isGroup(node) { return node && typeof node === "object" && ("all" in node || "any" in node || "not" in node); }
  function newCondition() { return {field: "lps", op: "gte", value: 70}; }

  let tree = null;
  function write() {
    textarea.value = JSON.stringify(tree, null, 2);
    textarea.dispatchEvent(new Event("builder-change"));
  }

  function valueInput(node, spec) {
    const kind = spec.value;
    const update = (v) => { node.value = v; write(); };
    if (kind === "none") return el("span");
    if (node.op === "exists") return el("span");
    if (kind === "number" && node.op === "between") {
      const pair = Array.isArray(node.value) ? node.value : [0, 100];
      node.value = pair;
      const a = el("input", {type: "number", step: "any", value: pair[0], class: "vNumber", "aria-label": "from"});
      const b = el("input", {type: "number", step: "any", value: pair[1], class: "vNumber", "aria-label": "to"});
      const set = () => update([Number(a.value), Number(b.value)]);
      a.addEventListener("input", set); b.addEventListener("input", set);
      return el("span", {}, [a, el("span", {text: " and "}), b]);
    }
    if (kind === "number") {
      const input = el("input", {type: "number", step: "any", value: node.value ?? "", class: "vNumber", "aria-label": "value"});
      input.addEventListener("input", () => update(input.value === "" ? null : Number(input.value)));
      return input;
    }
    if (kind === "choices") {
      const chosen = new Set(Array.isArray(node.value) ? node.value : []);
      const box = el("span", {class: "builder-choices"});
      spec.choices.forEach((c) => {
        const cb = el("input", {type: "checkbox", value: c});
        cb.checked = chosen.has(c);
        cb.addEventListener("change", () => { cb.checked ? chosen.add(c) : chosen.delete(c); update(spec.choices.filter((x) => chosen.has(x))); });
        box.appendChild(el("label", {}, [cb, document.createTextNode(" " + c + " ")]));
      });
      return box;
    }
    if (kind === "choice") {
      return select([["", "—"], ...spec.choices.map((c) => [c, c])], node.value ?? "", (e) => update(e.target.value));
    }
    const text = Array.isArray(node.value) ? node.value.join(", ") : (node.value ?? "");
    const input = el("input", {type: "text", value: text, "aria-label": "value", size: 24});
    input.addEventListener("input", () => update(kind === "list" || node.op === "in" ? input.value.split(",").map((s) => s.trim()).filter(Boolean) : input.value));
    return input;
  }

  function conditionRow(node, replace, remove) {
    const spec = byField[node.field];
    const row = el("div", {class: "builder-row"});
    if (!spec) {
      row.appendChild(el("span", {class: "errornote", text: "unknown field " + JSON.stringify(node.field) + " (edit the JSON)"}));
      return row;
    }
    row.appendChild(select(fields.map((f) => [f.field, f.label]), node.field, (e) => {
      const next = byField[e.target.value];
      const fresh = {field: next.field};
      if (next.ops.length) fresh.op = next.ops[0];
      if (next.value === "number") fresh.value = 0; else if (next.value === "choices") fresh.value = []; else if (next.value !== "none") fresh.value = "";
      (next.extra || []).forEach((x) => { if (x.type === "number") fresh[x.key] = 7; });
      replace(fresh);
    }, "builder-field"));
    (spec.extra || []).forEach((x) => {
      let input;
      if (x.type === "choice") {
        input = select(x.choices.map((c) => [c, c || "any"]), node[x.key] ?? "", (e) => { if (e.target.value) node[x.key] = e.target.value; else delete node[x.key]; write(); });
      } else {
        input = el("input", {type: x.type === "number" ? "number" : "text", value: node[x.key] ?? "", placeholder: x.label, size: 10, "aria-label": x.label});
        input.addEventListener("input", () => { if (input.value === "") delete node[x.key]; else node[x.key] = x.type === "number" ? Number(input.value) : input.value; write(); });
      }
      row.appendChild(el("span", {class: "builder-extra"}, [document.createTextNode(" " + x.label + " "), input]));
    });
    if (spec.ops.length) {
      row.appendChild(select(spec.ops.map((o) => [o, OPS[o] || o]), node.op || spec.ops[0], (e) => {
        const op = e.target.value;
        if (op === "between" && !Array.isArray(node.value)) node.value = [Number(node.value) || 0, 100];
        else if (op !== "between" && Array.isArray(node.value) && spec.value === "number") node.value = node.value[0];
        if (op === "exists") delete node.value;
        node.op = op;
        replace(node);
      }, "builder-op"));
    }
    row.appendChild(valueInput(node, spec));
    row.appendChild(el("button", {type: "button", class: "button builder-remove", text: "✕", title: "Remove this condition", onclick: remove}));
    return row;
  }

  function groupBox(node, replace, remove) {
    const box = el("div", {class: "builder-group"});
    const head = el("div", {class: "builder-head"});
    if ("not" in node) {
      head.appendChild(el("strong", {text: "None of this: "}));
      if (remove) head.appendChild(el("button", {type: "button", class: "button builder-remove", text: "✕", title: "Remove this group", onclick: remove}));
      box.appendChild(head);
      box.appendChild(render(node.not, (child) => { node.not = child; rerender(); }, null));
      return box;
    }
    const mode = "all" in node ? "all" : "any";
    const items = node[mode];
    head.appendChild(el("span", {text: "Learners matching "}));
    head.appendChild(select([["all", "all of"], ["any", "any of"]], mode, (e) => { const list = node[mode]; delete node[mode]; node[e.target.value] = list; rerender(); }, "builder-mode"));
    if (remove) head.appendChild(el("button", {type: "button", class: "button builder-remove", text: "✕", title: "Remove this group", onclick: remove}));
    box.appendChild(head);
    items.forEach((child, i) => {
      box.appendChild(render(child, (next) => { items[i] = next; rerender(); }, () => { items.splice(i, 1); rerender(); }));
    });
    const add = el("div", {class: "builder-add"}, [
      el("button", {type: "button", class: "button", text: "+ condition", onclick: () => { items.push(newCondition()); rerender(); }}),
      el("button", {type: "button", class: "button", text: "+ all/any group", onclick: () => { items.push({any: [newCondition()]}); rerender(); }}),
      el("button", {type: "button", class: "button", text: "+ none of", onclick: () => { items.push({not: newCondition()}); rerender(); }}),
    ]);
    box.appendChild(add);
    return box;
  }

  function render(node, replace, remove) {
    return isGroup(node) ? groupBox(node, replace, remove) : conditionRow(node, replace, remove);
  }

  function rerender() {
    write();
    draw();
  }
  function draw() {
    root.replaceChildren(render(tree, (next) => { tree = next; rerender(); }, null));
  }
  function load() {
    const text = textarea.value.trim();
    let parsed;
    try {
      parsed = text ? JSON.parse(text) : {all: []};
    } catch (error) {
      status.textContent = "The JSON below does not parse (" + error.message + "): fix it, and the rows follow.";
      return;
    }
    status.textContent = "";
    tree = isGroup(parsed) ? parsed : {all: [parsed]};
    draw();
  }
  textarea.addEventListener("input", load);
  load();
})();
