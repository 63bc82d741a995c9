// Hand-written SVG time charts: lines, stacked areas, a target line and marks on the time axis.
// No library: the charts are few and simple, and the page needs no build step or CDN.
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#be123c"];

function svgEl(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// spec: {title, xs: [unix s], series: [{name, values: [number|null]}], stacked, yMin, yMax,
//        target: {name, value}, marks: [{at, kind, label}]}
function timeChart(container, spec) {
  const W = 520, H = 190, L = 44, R = 10, T = 22, B = 26;
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": spec.title});
  svg.appendChild(svgEl("text", {x: L, y: 14, class: "title"}, spec.title));
  const xs = spec.xs;
  const x0 = xs[0], x1 = xs[xs.length - 1] || x0 + 1;
  let layers = spec.series.map((s) => s.values.map((v) => (v == null ? null : v)));
  if (spec.stacked) {
    const acc = xs.map(() => 0);
    layers = layers.map((vals) => vals.map((v, i) => (acc[i] += v || 0)));
  }
  const all = layers.flat().filter((v) => v != null).concat(spec.target ? [spec.target.value] : []);
  const yMin = spec.yMin ?? Math.min(0, ...all);
  const yMax = spec.yMax ?? Math.max(1e-9, ...all) * 1.1;
  const px = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y) => H - B - ((y - yMin) / (yMax - yMin || 1)) * (H - T - B);
  svg.appendChild(svgEl("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}));
  svg.appendChild(svgEl("line", {x1: L, y1: T, x2: L, y2: H - B, class: "axis"}));
  for (const y of [yMin, (yMin + yMax) / 2, yMax]) {
    svg.appendChild(svgEl("text", {x: L - 4, y: py(y) + 3, class: "tick", "text-anchor": "end"}, fmt(y)));
  }
  for (const [x, anchor] of [[x0, "start"], [(x0 + x1) / 2, "middle"], [x1, "end"]]) {
    svg.appendChild(svgEl("text", {x: px(x), y: H - 8, class: "tick", "text-anchor": anchor},
      new Date(x * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})));
  }
  layers.forEach((vals, k) => {
    const color = PALETTE[k % PALETTE.length];
    const pts = vals.map((v, i) => (v == null ? null : [px(xs[i]), py(v)]));
    if (spec.stacked) {
      const below = k === 0 ? xs.map(() => 0) : layers[k - 1];
      const top = pts.map((p, i) => p || [px(xs[i]), py(0)]);
      const bottom = below.map((v, i) => [px(xs[i]), py(v || 0)]).reverse();
      const d = "M" + top.concat(bottom).map((p) => p.join(",")).join("L") + "Z";
      svg.appendChild(svgEl("path", {d, fill: color, "fill-opacity": 0.55, class: "area",
        "data-series": spec.series[k].name}));
    } else {
      let d = "", pen = "M";
      for (const p of pts) { if (!p) { pen = "M"; continue; } d += pen + p.join(","); pen = "L"; }
      svg.appendChild(svgEl("path", {d: d || "M0,0", fill: "none", stroke: color, "stroke-width": 2,
        class: "line", "data-series": spec.series[k].name, "data-points": pts.filter(Boolean).length}));
    }
    svg.appendChild(svgEl("text", {x: W - R - 4 - 90 * (spec.series.length - 1 - k), y: 14, fill: color,
      class: "legend", "text-anchor": "end"}, spec.series[k].name));
  });
  if (spec.target) {
    svg.appendChild(svgEl("line", {x1: L, x2: W - R, y1: py(spec.target.value), y2: py(spec.target.value),
      class: "target"}));
    svg.appendChild(svgEl("text", {x: L + 4, y: py(spec.target.value) - 3, class: "tick"}, spec.target.name));
  }
  for (const m of spec.marks || []) {
    if (m.at < x0 || m.at > x1) continue;
    const g = svgEl("g", {class: "mark mark-" + (m.kind === "drift" ? "drift" : "version")});
    g.appendChild(svgEl("line", {x1: px(m.at), x2: px(m.at), y1: T, y2: H - B}));
    g.appendChild(svgEl("title", {}, `${m.kind}: ${m.label}${m.actor ? " by " + m.actor : ""}`));
    svg.appendChild(g);
  }
  container.replaceChildren(svg);
}

function fmt(v) {
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
