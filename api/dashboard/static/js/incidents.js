// Incidents: the tenant's alerts, firing and resolved (GET /v1/alerts?state=all), kept live by
// the feed's alert.triggered and alert.resolved, folded in the way the alerts table folds them
// (one row per alert, its latest event winning). Read-only: no endpoint acknowledges yet.
import { apiGet, openFeed } from "./api.js";
import { el, failure, fmt, table } from "./dom.js";

const COLUMNS = [
  { label: "State", value: (a) => el("span", { class: `status status-${a.state === "firing" ? "failed" : "completed"}` }, a.state) },
  { label: "Rule", value: (a) => a.rule },
  { label: "Kind", value: (a) => a.kind },
  { label: "Severity", value: (a) => a.severity },
  { label: "Indicator", value: (a) => a.indicator },
  { label: "Fired", value: (a) => fmt.time(a.fired_at) },
  { label: "Resolved", value: (a) => fmt.time(a.resolved_at) },
  { label: "Value / threshold", value: (a) => `${a.value.toPrecision(3)} / ${a.threshold.toPrecision(3)}`, numeric: true },
  { label: "Message", value: (a) => a.message },
];

// An alert.triggered|resolved message as a row of GET /v1/alerts.
function alertOf(message) {
  const { payload, timestamp } = message.alert;
  const resolved = message.type === "alert.resolved";
  return {
    alert_id: payload.alert_id, rule: payload.rule, kind: payload.kind, severity: payload.severity,
    indicator: payload.indicator, state: resolved ? "resolved" : "firing", fired_at: payload.fired_at,
    resolved_at: resolved ? timestamp : null, value: payload.value, threshold: payload.threshold,
    labels: payload.labels, message: payload.message,
  };
}

export function incidents(root, setLive) {
  const body = el("div");
  root.append(el("h1", {}, "Incidents"), body);
  let alerts = new Map(); // alert id -> row, latest fired first
  const render = () => body.replaceChildren(table("Alerts, latest fired first (GET /v1/alerts?state=all)",
    COLUMNS, [...alerts.values()], (a) => ({ "data-alert-id": a.alert_id })));
  const close = openFeed({ tenant: true }, (message) => {
    if (!message.type.startsWith("alert.")) return;
    const alert = alertOf(message);
    alerts = new Map([[alert.alert_id, alert], ...[...alerts].filter(([id]) => id !== alert.alert_id)]);
    render();
  }, setLive);
  apiGet("/v1/alerts", { state: "all" }).then((listed) => {
    for (const alert of listed.alerts) if (!alerts.has(alert.alert_id)) alerts.set(alert.alert_id, alert);
    render();
  }, (error) => body.replaceChildren(failure(error)));
  return close;
}
