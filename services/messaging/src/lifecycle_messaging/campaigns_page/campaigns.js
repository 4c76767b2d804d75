// The campaigns page: reads GET /v1/campaigns/lift with the API token given in the address's fragment
// (#token=...) or the form, and draws one row per campaign. Text only (textContent): ids are never markup.
"use strict";

const pct = (x) => (x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%");
const pts = (x) => (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + " pts";
const money = (x) => (x >= 0 ? "+" : "") + x.toFixed(2);

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function intervalBar(td, diff) {
  // The interval on a scale of -50..+50 points, with a tick at zero.
  const box = document.createElement("div");
  box.className = "interval";
  const scale = (x) => Math.max(0, Math.min(100, 50 + x * 100));
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.style.left = scale(diff.interval.low) + "%";
  bar.style.width = Math.max(1, scale(diff.interval.high) - scale(diff.interval.low)) + "%";
  const zero = document.createElement("div");
  zero.className = "zero";
  zero.style.left = "50%";
  box.append(bar, zero);
  td.appendChild(box);
}

function draw(campaigns) {
  const body = document.querySelector("#campaigns tbody");
  body.replaceChildren();
  for (const c of campaigns) {
    const row = document.createElement("tr");
    row.dataset.campaign = c.campaign;
    cell(row, c.campaign, "campaign");
    cell(row, String(c.messages.sent), "sent");
    cell(row, String(c.messages.held), "held");
    const reasons = Object.entries(c.messages.suppressed).map(([reason, n]) => reason + ": " + n).join(", ");
    cell(row, reasons || "none", "suppressed");
    cell(row, c.holdout.eligible + " / " + c.holdout.converted + " (" + pct(c.holdout.conversion) + ")", "holdout");
    cell(row, c.treatment.eligible + " / " + c.treatment.converted + " (" + pct(c.treatment.conversion) + ")",
         "treatment");
    const d = c.conversion_difference;
    if (d) {
      const kind = d.interval.low > 0 ? "positive" : d.interval.high < 0 ? "negative" : "";
      const td = cell(row, pts(d.estimate) + " [" + pts(d.interval.low) + ", " + pts(d.interval.high) + "]",
                      "lift " + kind);
      intervalBar(td, d);
    } else {
      const mde = c.minimum_detectable_effect;
      cell(row, "not enough data" + (mde !== null ? "; detectable: " + pts(mde) : ""), "lift");
    }
    const r = c.revenue_difference;
    cell(row, r ? money(r.estimate) + " [" + money(r.interval.low) + ", " + money(r.interval.high) + "]" : "-",
         "revenue");
    const s = c.sample_ratio;
    cell(row, s.alarm ? "MISMATCH (p=" + s.p_value.toExponential(1) + ")" : "ok", s.alarm ? "srm alarm" : "srm");
    cell(row, c.status + (c.reasons.length ? ": " + c.reasons.join("; ") : ""), "status");
    body.appendChild(row);
  }
}

async function load(token) {
  const banner = document.getElementById("banner");
  const answer = await fetch("/v1/campaigns/lift", {headers: {Authorization: "Bearer " + token}});
  if (!answer.ok) {
    let detail = answer.statusText;
    try { detail = (await answer.json()).detail || detail; } catch (e) { /* not JSON */ }
    banner.textContent = "The API answered " + answer.status + ": " + detail;
    banner.hidden = false;
    document.getElementById("token-form").hidden = false;
    return;
  }
  banner.hidden = true;
  document.getElementById("token-form").hidden = true;
  draw(await answer.json());
  document.getElementById("as-of").textContent = "As of " + new Date().toISOString();
  document.getElementById("content").hidden = false;
}

function fromFragment() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const dashboard = params.get("dashboard");
  if (dashboard && /^https?:\/\//.test(dashboard)) {
    const link = document.getElementById("dashboard-link");
    link.href = dashboard;
    link.hidden = false;
  }
  const token = params.get("token");
  if (token) load(token); else document.getElementById("token-form").hidden = false;
}

window.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("token-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(new FormData(form).get("token"));
  });
  fromFragment();
});
window.addEventListener("hashchange", fromFragment);
