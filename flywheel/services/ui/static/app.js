// The dashboard page: signs in with an API token, then shows what the token's role may see
// and offers only what it may do (GET /v1/dashboard/me); the API checks the role again.
"use strict";
const $ = (sel) => document.querySelector(sel);
const state = {token: sessionStorage.getItem("flywheel-token"), me: null, page: "overview", timer: null};

async function api(method, path, body) {
  const r = await fetch(path, {method, headers: {"Authorization": "Bearer " + state.token,
    "Content-Type": "application/json"}, body: body ? JSON.stringify(body) : undefined});
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const msg = data && data.detail ? (Array.isArray(data.detail) ? data.detail[0].msg : data.detail) : r.statusText;
    throw Object.assign(new Error(msg), {status: r.status});
  }
  return data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c == null ? "" : c);
  return e;
}
const when = (t) => new Date(t * 1000).toLocaleString();
const wf = () => $("#workflow").value;
const allowed = (need) => ({review: state.me.can_review, operate: state.me.can_operate,
  approve: state.me.can_approve})[need];

async function signIn(token) {
  state.token = token;
  try {
    state.me = await api("GET", "/v1/dashboard/me");
  } catch (e) {
    $("#signin-error").textContent = e.status === 401 ? "Unknown or revoked token." : e.message;
    return;
  }
  sessionStorage.setItem("flywheel-token", token);
  $("#signin").hidden = true; $("#page").hidden = false; $("#nav").hidden = false; $("#signout").hidden = false;
  $("#who").textContent = `${state.me.name} (${state.me.role})`;
  $("#workflow").replaceChildren(...state.me.workflows.map((w) => el("option", {}, w)));
  document.querySelectorAll("[data-needs]").forEach((e) => { e.hidden = !allowed(e.dataset.needs); });
  if (!state.me.can_review) {
    $("#denied").hidden = false;
    $("#denied").textContent = `Role ${state.me.role} has no view on the dashboard.`;
    document.querySelectorAll(".view").forEach((v) => { v.hidden = true; });
    return;
  }
  show("overview");
}

function show(page) {
  state.page = page;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== page; });
  document.querySelectorAll("#nav button").forEach((b) => b.classList.toggle("active", b.dataset.page === page));
  clearInterval(state.timer);
  const load = {overview: loadOverview, versions: loadVersions, review: loadReview, runs: loadRuns, audit: loadAudit}[page];
  load();
  if (page === "overview") state.timer = setInterval(loadOverview, 2000);
}

async function loadOverview() {
  const s = await api("GET", `/v1/dashboard/workflows/${wf()}/series?window_s=${$("#window").value}&buckets=60`);
  const xs = s.buckets.map((b) => b.start + s.bucket_s / 2);
  const col = (f) => s.buckets.map(f);
  timeChart($("#chart-runs"), {title: "Runs per minute", xs, marks: s.marks,
    series: [{name: "runs/min", values: col((b) => b.runs_per_min)}]});
  timeChart($("#chart-reward"), {title: "Mean reward", xs, marks: s.marks,
    series: [{name: "reward", values: col((b) => b.mean_reward)}]});
  timeChart($("#chart-shares"), {title: "Route shares", xs, marks: s.marks, stacked: true, yMin: 0, yMax: 1,
    series: s.arms.map((a) => ({name: a, values: col((b) => (b.runs ? b.route_shares[a] || 0 : null))}))});
  timeChart($("#chart-gate"), {title: "Gate and humans", xs, marks: s.marks,
    yMin: 0, yMax: 1, target: {name: "error target", value: s.target},
    series: [{name: "threshold", values: col((b) => b.threshold)},
             {name: "to humans", values: col((b) => b.human_share)},
             {name: "unattended err", values: col((b) => b.unattended_error_rate)}]});
  const n = s.buckets.reduce((a, b) => a + b.runs, 0);
  $("#status").textContent = `${n} runs, ${s.marks.length} marks in the window`;
  $("#status").dataset.runs = n;
}

function reasonOf(input) {
  const reason = input.value.trim();
  if (!reason) { alert("A reason is required."); return null; }
  return reason;
}

async function act(result, path, body, question) {
  if (!confirm(question)) return;
  try {
    const r = await api("POST", path, body);
    result.className = "ok";
    result.textContent = `${r.action}: live ${r.live_version} (${r.status})`;
  } catch (e) {
    result.className = "error"; result.textContent = `${e.status}: ${e.message}`;
  }
  if (state.page === "versions") loadVersions(); else loadReview();
}

async function loadVersions() {
  const h = await api("GET", `/v1/workflows/${wf()}/history`);
  const rows = h.versions.slice().reverse().map((v) => {
    const live = [v.champion && "champion", v.candidate && "candidate", v.pinned && "pinned"].filter(Boolean).join(", ");
    const pin = state.me.can_operate ? el("button", {"data-testid": `pin-${v.number}`, onclick: (ev) => {
      ev.stopPropagation();
      const reason = reasonOf($("#op-reason"));
      if (reason) act($("#op-result"), `/v1/workflows/${wf()}/pin`, {version: v.number, reason}, `Pin v${v.number}?`);
    }}, "Pin") : "";
    return el("tr", {class: "clickable", "data-version": v.number, onclick: () => versionDetail(v.number)},
      el("td", {}, v.label), el("td", {}, v.status), el("td", {}, live), el("td", {}, v.proposed_by),
      el("td", {}, v.reviewed_by || ""), el("td", {}, v.reason || v.policy_notes || ""), el("td", {}, when(v.created_at)),
      el("td", {}, pin));
  });
  $("#version-table tbody").replaceChildren(...rows);
}

function evidenceBlock(d) {
  const gain = d.estimated_gain == null ? "n/a" : `${d.estimated_gain.toFixed(4)} ± ${(d.estimated_gain_se || 0).toFixed(4)}`;
  const rewards = Object.entries(d.evidence).filter(([k]) => k.startsWith("reward_mean."))
    .map(([k, v]) => `${k.slice(12)} ${v.toFixed(3)}`).join(", ");
  return el("div", {class: "evidence"},
    el("p", {}, `Outcomes: ${d.evidence.outcomes ?? d.evidence.n_outcomes ?? "n/a"} · mean reward per arm: ${rewards || "n/a"}`),
    el("p", {}, `Estimated gain vs champion: ${gain} · drift events: ${d.drift_events ?? 0}`),
    el("table", {class: "diff"}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, `champion v${d.champion ?? "-"}`),
      el("th", {}, "proposal")),
      ...d.diff.map((r) => el("tr", {}, el("td", {}, r.parameter), el("td", {}, String(r.champion)),
        el("td", {}, String(r.proposal))))));
}

async function versionDetail(n) {
  const d = await api("GET", `/v1/workflows/${wf()}/versions/${n}`);
  const box = $("#version-detail");
  box.hidden = false;
  box.replaceChildren(el("h3", {}, `${d.version.label}: ${d.version.status}`), evidenceBlock(d));
}

async function loadReview() {
  const list = await api("GET", `/v1/proposals?workflow=${wf()}`);
  const cards = [];
  for (const p of list.proposals) {
    const d = await api("GET", `/v1/workflows/${wf()}/versions/${p.number}`);
    const card = el("div", {class: "box proposal", "data-version": p.number},
      el("h3", {}, `${p.label} proposed by ${p.proposed_by}`), el("p", {class: "muted"}, p.policy_notes || ""),
      evidenceBlock(d));
    if (state.me.can_approve) {
      const reason = el("input", {placeholder: "reason (required)", size: 40, "data-testid": `reason-${p.number}`});
      const result = el("span", {});
      const decide = (verb) => () => {
        const r = reasonOf(reason);
        if (r) act(result, `/v1/workflows/${wf()}/versions/${p.number}/${verb}`, {reason: r}, `${verb} ${p.label}?`);
      };
      card.append(reason, el("button", {"data-testid": `approve-${p.number}`, onclick: decide("approve")}, "Approve"),
        el("button", {"data-testid": `reject-${p.number}`, onclick: decide("reject")}, "Reject"), result);
    }
    cards.push(card);
  }
  $("#proposals").replaceChildren(...(cards.length ? cards : [el("p", {class: "muted"}, "No proposal waits for review.")]));
}

async function loadRuns() {
  const arms = $("#f-arm");
  if (arms.options.length === 1) {
    const s = await api("GET", `/v1/dashboard/workflows/${wf()}/series?window_s=60&buckets=1`);
    s.arms.forEach((a) => arms.append(el("option", {}, a)));
  }
  const q = new URLSearchParams({limit: 100});
  if ($("#f-status").value) q.set("status", $("#f-status").value);
  if (arms.value) q.set("arm", arms.value);
  if ($("#f-version").value.trim()) q.set("version", $("#f-version").value.trim());
  const runs = await api("GET", `/v1/dashboard/workflows/${wf()}/runs?${q}`);
  $("#run-table tbody").replaceChildren(...runs.map((r) => el("tr", {class: "clickable", "data-run": r.run_id,
    onclick: () => showTrace(r.run_id)}, el("td", {}, r.run_id.slice(0, 12)), el("td", {}, r.status),
    el("td", {}, r.arm || ""), el("td", {}, r.config_version), el("td", {}, r.to_human == null ? "" : r.to_human ? "yes" : "no"),
    el("td", {}, when(r.created_at)))));
}

async function showTrace(runId) {
  const t = await api("GET", `/v1/runs/${runId}/trace`);
  const box = $("#trace");
  box.hidden = false;
  const scores = Object.entries(t.scores).map(([a, s]) => el("tr", {}, el("td", {}, a === t.arm ? `${a} ✔` : a),
    el("td", {}, s.toFixed(4))));
  box.replaceChildren(el("h3", {}, `Trace of run ${t.run_id}`),
    el("p", {}, `trace id ${t.trace_id || "-"} · version ${t.config_version} · arm ${t.arm} (propensity ${t.propensity?.toFixed(3)})`),
    el("p", {}, t.gate ? `gate ${t.gate.step}: confidence ${t.gate.confidence.toFixed(3)} vs threshold ${t.gate.threshold.toFixed(3)} → ${t.gate.passed ? "unattended" : "to a human"}` : "no gate reached"),
    el("p", {}, t.policy ? `policy: v${t.policy.number} ${t.policy.status}; ${t.policy.policy_notes || "no notes"}` : "policy: initial config (no registry version)"),
    el("table", {class: "scores"}, el("tr", {}, el("th", {}, "arm"), el("th", {}, "score")), ...scores),
    el("pre", {}, JSON.stringify({features: t.features, agent: t.agent, outcomes: t.outcomes}, null, 1)));
}

async function loadAudit() {
  const [h, v] = await Promise.all([api("GET", `/v1/workflows/${wf()}/history`), api("GET", "/v1/audit/verify")]);
  const p = $("#audit-verify");
  p.className = v.intact ? "ok" : "error";
  p.textContent = v.intact ? `Audit chain verified: ${v.entries} entries intact.` : `Audit chain broken: ${v.problems.join("; ")}`;
  $("#audit-table tbody").replaceChildren(...h.events.slice().reverse().map((e) => el("tr", {},
    el("td", {}, e.id), el("td", {}, when(e.at)), el("td", {}, e.actor), el("td", {}, e.action),
    el("td", {}, e.subject), el("td", {}, e.reason), el("td", {class: "muted"}, e.hash.slice(0, 12)))));
}

$("#signin-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#token").value.trim()); });
$("#signout").addEventListener("click", () => { sessionStorage.removeItem("flywheel-token"); location.reload(); });
document.querySelectorAll("#nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.page)));
$("#workflow").addEventListener("change", () => show(state.page));
$("#window").addEventListener("change", () => show(state.page));
$("#f-apply").addEventListener("click", loadRuns);
$("#unpin").addEventListener("click", () => {
  const reason = reasonOf($("#op-reason"));
  if (reason) act($("#op-result"), `/v1/workflows/${wf()}/unpin`, {reason}, "Release the pin?");
});
$("#rollback").addEventListener("click", () => {
  const reason = reasonOf($("#op-reason"));
  if (reason) act($("#op-result"), `/v1/workflows/${wf()}/rollback`, {reason}, "Roll back to the previous champion?");
});
if (state.token) signIn(state.token);
