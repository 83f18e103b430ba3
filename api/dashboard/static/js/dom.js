// DOM building without innerHTML: every value from the API lands as text, never as markup.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// A table with a caption, header cells scoped to their column, right-aligned numeric columns.
// columns: [{label, value(row) -> text|Node, numeric}]
export function table(caption, columns, rows, rowAttributes = () => ({})) {
  return el("div", { class: "scroll" },
    el("table", {},
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.numeric ? "num" : null }, c.label)))),
      el("tbody", {}, rows.length
        ? rows.map((row) => tableRow(columns, row, rowAttributes(row)))
        : el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, "none"))),
    ));
}

export function tableRow(columns, row, attributes = {}) {
  return el("tr", attributes, columns.map((c) => el("td", { class: c.numeric ? "num" : null }, c.value(row))));
}

export const fmt = {
  int: (n) => (n ?? null) === null ? "–" : Math.round(n).toLocaleString("en-US"),
  ms: (n) => (n ?? null) === null ? "–" : `${Math.round(n).toLocaleString("en-US")} ms`,
  pct: (r) => (r ?? null) === null ? "–" : `${(r * 100).toFixed(1)} %`,
  usd: (n) => (n ?? null) === null ? "–" : `$${n < 0.01 && n > 0 ? n.toPrecision(3) : n.toFixed(2)}`,
  time: (iso) => iso ? new Date(iso).toLocaleString("en-GB", { hour12: false }) : "–",
  yes: (flag) => flag ? "yes" : "no",
};

export function statusBadge(status) {
  return el("span", { class: `status status-${status}` }, status);
}

export function failure(error) {
  return el("p", { class: "error", role: "alert" }, error.status === 401
    ? "The API refused the key: enter a valid API key above."
    : `Could not load: ${error.message}`);
}
