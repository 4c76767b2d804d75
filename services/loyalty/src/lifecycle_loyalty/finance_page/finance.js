"use strict";
// Reads loyalty's finance API with the admin token given in the fragment (#token=...) or the form.
(function () {
  const $ = (id) => document.getElementById(id);
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) $("token").value = fragment.get("token");
  const today = new Date();
  $("to").value = today.toISOString().slice(0, 10);
  $("from").value = new Date(Date.UTC(today.getUTCFullYear(), 0, 1)).toISOString().slice(0, 10);

  function rows(table, pairs) {
    table.replaceChildren(...pairs.map(([k, v]) => {
      const tr = document.createElement("tr");
      for (const cell of [k, v]) {
        const td = document.createElement("td");
        td.textContent = String(cell);
        tr.appendChild(td);
      }
      return tr;
    }));
  }

  async function get(path, params) {
    const answer = await fetch(path + "?" + new URLSearchParams(params),
      {headers: {authorization: "Bearer " + $("token").value}});
    if (!answer.ok) throw new Error(path + ": " + answer.status);
    return answer.json();
  }

  async function show(event) {
    if (event) event.preventDefault();
    $("error").textContent = "";
    const period = {from: $("from").value + "T00:00:00Z", to: $("to").value + "T00:00:00Z"};
    try {
      const roll = await get("/v1/admin/finance/roll-forward", period);
      rows($("roll"), [["opening", roll.opening], ["issued", roll.issued], ["redeemed", roll.redeemed],
        ["expired", roll.expired], ...Object.entries(roll.adjustments).map(([k, v]) => ["adjustment: " + k, v]),
        ["closing", roll.closing]]);
      const liability = await get("/v1/admin/finance/liability", {at: period.to});
      rows($("liability"), [["outstanding points", liability.outstanding_points],
        ["breakage", liability.breakage_rate + " (" + liability.breakage_method + ")"],
        ...Object.entries(liability.liability).map(([c, v]) => ["liability " + c, v])]);
      rows($("cohorts"), liability.cohorts.map((c) => [c.month,
        `earned ${c.earned}, expired ${c.expired}, held ${c.remaining}${c.mature ? ", mature" : ""}`]));
      rows($("expiring"), liability.expiring_by_month.map((m) => [m.month, `${m.points} points in ${m.lots} lots`]));
      const ifrs = await get("/v1/admin/finance/deferred-revenue", period);
      rows($("ifrs"), [["currency", ifrs.currency], ["allocated to points in the period", ifrs.allocated_to_points],
        ["revenue recognised in the period", ifrs.revenue_recognised],
        ["contract liability at the end", ifrs.closing.contract_liability],
        ["points issued / redeemed / expected", `${ifrs.closing.points_issued} / ${ifrs.closing.points_redeemed} / ${ifrs.closing.expected_redemptions}`]]);
    } catch (error) {
      $("error").textContent = String(error.message);
    }
  }

  $("period").addEventListener("submit", show);
  if ($("token").value) show();
})();
