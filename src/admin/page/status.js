// limpet's status page: polls GET /stats, draws it, and sends the drain,
// disable, enable and weight calls. Everything comes from this listener;
// an admin token, when one is needed, is typed in and kept in
// sessionStorage (this tab only), never in the page.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "limpet-admin-token";
let previous = null; // { at, servers: { "group/server": responses }, requests }

function headers(extra) {
  const h = Object.assign({ "X-Limpet-Admin": "1" }, extra || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    h["Authorization"] = "Bearer " + token;
  }
  return h;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") {
      node.className = v;
    } else {
      node.setAttribute(k, v);
    }
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function problem(text) {
  const p = document.getElementById("problem");
  p.hidden = !text;
  p.textContent = text || "";
}

function ms(v) {
  return v === null || v === undefined ? "–" : v + " ms";
}

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + b, 0);
}

function rate(now, key, value) {
  if (!previous || previous.values[key] === undefined) {
    return "–";
  }
  const seconds = (now - previous.at) / 1000;
  return seconds > 0 ? ((value - previous.values[key]) / seconds).toFixed(1) : "–";
}

function card(label, value, id) {
  return el("div", { class: "card", id: id }, label, el("b", {}, value));
}

function draw(stats) {
  const now = Date.now();
  const values = {};
  document.getElementById("version").textContent = "v" + stats.version + " (" + stats.commit + ")";
  document.getElementById("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
  values.requests = stats.requests;
  const refused = sum(stats.sticky.refused);
  const totals = document.getElementById("totals");
  const errors5xx = stats.responses["5xx"];
  totals.replaceChildren(
    card("requests", stats.requests, "total-requests"),
    card("requests/s", rate(now, "requests", stats.requests), "total-rate"),
    card("5xx", errors5xx, "total-5xx"),
    card("sessions new", stats.sticky.new, "sticky-new"),
    card("stuck", stats.sticky.hits, "sticky-stuck"),
    card("moved", stats.sticky.moved, "sticky-moved"),
    card("refused", refused, "sticky-refused"),
  );
  const groups = document.getElementById("groups");
  const names = stats.groups.map((g) => g.name + ":" + g.servers.map((s) => s.name).join(",")).join(";");
  if (groups.dataset.layout !== names) {
    // Servers came or went: build the tables again. Otherwise only the
    // cells change, so a weight being typed in keeps its value and focus.
    groups.replaceChildren(...stats.groups.flatMap(table));
    groups.dataset.layout = names;
  }
  for (const group of stats.groups) {
    for (const s of group.servers) {
      const key = group.name + "/" + s.name;
      values[key] = s.responses;
      const row = groups.querySelector('tr[data-server="' + CSS.escape(key) + '"]');
      const answered = sum(s.classes);
      const errors = answered ? ((100 * s.classes["5xx"]) / answered).toFixed(1) + " %" : "–";
      const cells = {
        address: s.address,
        admin: s.admin,
        health: s.health,
        weight: s.weight,
        inflight: s.in_flight,
        responses: s.responses,
        rate: rate(now, key, s.responses),
        errors: errors,
        sticky: s.sticky_hits,
        drain: s.drain ? s.drain.state : "–",
        p50: ms(s.latency.request.p50_ms),
        p90: ms(s.latency.request.p90_ms),
        p99: ms(s.latency.request.p99_ms),
      };
      for (const [name, text] of Object.entries(cells)) {
        row.querySelector("." + name).textContent = text;
      }
      row.querySelector("td.admin").className = "state admin " + s.admin + " " + s.health;
      row.querySelector("td.health").className = "state health " + s.health;
      // Persistent requests per second, under the count: what a drain waits out.
      row.querySelector("td.sticky").append(el("div", { class: "muted" }, s.persistent_per_second.toFixed(1) + "/s"));
      row.querySelector("td.drain").className = "drain " + (s.drain ? s.drain.state : "");
    }
  }
  previous = { at: now, values: values };
}

// A group's heading and table, cells empty until the first draw fills them.
function table(group) {
  const rows = group.servers.map((s) => {
    const key = group.name + "/" + s.name;
    const weight = el("input", { class: "weight-input", type: "number", min: "1", max: "256", value: s.weight });
    const act = (action, label) =>
      el("button", { "data-action": action, "data-group": group.name, "data-server": s.name }, label);
    const td = (name) => el("td", { class: name });
    return el(
      "tr",
      { "data-server": key },
      el("td", { class: "name" }, s.name, el("div", { class: "muted address" })),
      td("state admin"),
      td("state health"),
      td("weight"),
      td("inflight"),
      td("responses"),
      td("rate"),
      td("errors"),
      td("sticky"),
      td("drain"),
      td("p50"),
      td("p90"),
      td("p99"),
      el("td", { class: "actions" }, act("drain", "drain"), act("disable", "disable"), act("enable", "enable"), weight, act("weight", "set weight")),
    );
  });
  const head = el(
    "tr",
    {},
    ...["server", "admin", "health", "weight", "in flight", "responses", "req/s", "5xx", "stuck", "drain", "p50", "p90", "p99", ""].map((h) => el("th", {}, h)),
  );
  return [el("h2", {}, "group " + group.name), el("table", { "data-group": group.name }, el("thead", {}, head), el("tbody", {}, ...rows))];
}

async function refresh() {
  try {
    const answer = await fetch("/stats", { headers: headers(), cache: "no-store" });
    if (answer.status === 401) {
      document.getElementById("login").hidden = false;
      problem("This limpet needs its admin token.");
      return;
    }
    if (!answer.ok) {
      problem("GET /stats: " + answer.status);
      return;
    }
    document.getElementById("login").hidden = true;
    problem("");
    draw(await answer.json());
  } catch (err) {
    problem("limpet does not answer: " + err.message);
  }
}

async function act(button) {
  const { action, group, server } = button.dataset;
  const base = "/servers/" + encodeURIComponent(group) + "/" + encodeURIComponent(server);
  let request;
  if (action === "weight") {
    const weight = Number(button.previousElementSibling.value);
    request = fetch(base + "/weight", {
      method: "PUT",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ weight: weight }),
    });
  } else {
    request = fetch(base + "/" + action, { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: "{}" });
  }
  const answer = await request;
  if (!answer.ok) {
    const body = await answer.json().catch(() => ({}));
    problem(action + " " + group + "/" + server + ": " + answer.status + " " + (body.error || ""));
    return;
  }
  await refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("groups").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) {
      act(button);
    }
  });
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    document.getElementById("token").value = "";
    refresh();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
