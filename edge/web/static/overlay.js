// Live numbers and a 60 s chart from /api/live, the pulse view from /api/pulse; plain canvas, nothing
// loaded from elsewhere (the page works offline).
"use strict";

const POLL_MS = 500;
const PULSE_POLL_MS = 1000; // the view changes once per heart-rate step (1 s)
const BAND_BPM = [40, 180];
const PATH_S = 30;

function show(id, value, digits) {
  const el = document.getElementById(id);
  el.textContent = (value === null || value === undefined) ? "--"
    : (typeof value === "number" && digits !== undefined) ? value.toFixed(digits) : String(value);
}

function range(values, minSpan) {
  const finite = values.filter((v) => v !== null);
  if (finite.length === 0) return null;
  let lo = Math.min(...finite), hi = Math.max(...finite);
  if (hi - lo < minSpan) { const mid = (hi + lo) / 2; lo = mid - minSpan / 2; hi = mid + minSpan / 2; }
  return [lo, hi];
}

function drawSeries(ctx, t, values, now, spanS, box, colour, minSpan) {
  const r = range(values, minSpan);
  if (r === null) return null;
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.beginPath();
  let pen = false;
  for (let i = 0; i < t.length; i++) {
    if (values[i] === null) { pen = false; continue; }
    const x = box.x + box.w * (1 - (now - t[i]) / spanS);
    const y = box.y + box.h * (1 - (values[i] - r[0]) / (r[1] - r[0]));
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  }
  ctx.stroke();
  return r;
}

function drawChart(history, spanS) {
  const canvas = document.getElementById("chart");
  const ctx = canvas.getContext("2d");
  const box = { x: 40, y: 10, w: canvas.width - 80, h: canvas.height - 30 };
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#333";
  ctx.strokeRect(box.x, box.y, box.w, box.h);
  ctx.fillStyle = "#888";
  ctx.font = "11px sans-serif";
  ctx.fillText(`-${spanS.toFixed(0)} s`, box.x, canvas.height - 4);
  ctx.fillText("now", box.x + box.w - 20, canvas.height - 4);
  if (history.t.length === 0) return;
  const now = history.t[history.t.length - 1];
  const hr = drawSeries(ctx, history.t, history.bpm, now, spanS, box, "#f66", 10);
  const temp = drawSeries(ctx, history.t, history.temp_c, now, spanS, box, "#6cf", 1);
  if (hr) { ctx.fillStyle = "#f66"; ctx.fillText(hr[1].toFixed(0), 4, box.y + 10); ctx.fillText(hr[0].toFixed(0), 4, box.y + box.h); }
  if (temp) {
    ctx.fillStyle = "#6cf";
    ctx.fillText(temp[1].toFixed(1), box.x + box.w + 4, box.y + 10);
    ctx.fillText(temp[0].toFixed(1), box.x + box.w + 4, box.y + box.h);
  }
}

async function poll() {
  try {
    const response = await fetch("/api/live", { cache: "no-store" });
    const live = await response.json();
    show("device", live.device_id);
    const rec = live.record;
    const state = document.getElementById("state");
    if (rec) {
      show("hr", rec.heart_rate.bpm, 0);
      show("temp", rec.temperature.face_corrected_c, 1);
      show("raw", rec.temperature.face_raw_c, 1);
      show("offset", rec.temperature.offset_c, 2);
      show("reference", rec.temperature.reference);
      show("confidence", rec.heart_rate.confidence, 2);
      show("seq", rec.seq);
      show("flags", rec.flags.length ? rec.flags.join(", ") : "none");
      state.textContent = "live";
      state.className = "state live";
    }
    drawChart(live.history, live.chart_s);
  } catch (err) {
    const state = document.getElementById("state");
    state.textContent = "disconnected";
    state.className = "state";
  }
  setTimeout(poll, POLL_MS);
}

function frame(ctx, canvas, box) {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#333";
  ctx.lineWidth = 1;
  ctx.setLineDash([]);
  ctx.strokeRect(box.x, box.y, box.w, box.h);
  ctx.fillStyle = "#888";
  ctx.font = "11px sans-serif";
}

function polyline(ctx, xs, ys, colour, width, dash) {
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  ctx.setLineDash(dash || []);
  ctx.beginPath();
  let pen = false;
  for (let i = 0; i < xs.length; i++) {
    if (xs[i] === null || ys[i] === null) { pen = false; continue; }
    if (pen) ctx.lineTo(xs[i], ys[i]); else ctx.moveTo(xs[i], ys[i]);
    pen = true;
  }
  ctx.stroke();
  ctx.setLineDash([]);
}

// The newest 10 s of the pulse (newest at the right), the end of the window the rate describes dashed.
function drawWave(view) {
  const canvas = document.getElementById("pulse-wave");
  const ctx = canvas.getContext("2d");
  const box = { x: 40, y: 8, w: canvas.width - 50, h: canvas.height - 28 };
  frame(ctx, canvas, box);
  const spanS = 10;
  ctx.fillText(`-${spanS} s`, box.x, canvas.height - 4);
  ctx.fillText("now", box.x + box.w - 20, canvas.height - 4);
  if (view === null) return;
  const xOf = (age) => box.x + box.w * (1 - age / spanS);
  const yOf = (v) => (v === null ? null : box.y + box.h * (0.5 - 0.45 * v));
  polyline(ctx, view.pulse.age_s.map(xOf), view.pulse.value.map(yOf), "#6d6", 1.5);
  const end = view.spectrum.chosen_age_s;
  if (end <= spanS) {
    polyline(ctx, [xOf(end), xOf(end)], [box.y, box.y + box.h], "#888", 1, [3, 3]);
    ctx.fillStyle = "#888";
    ctx.fillText(`-${end.toFixed(0)} s`, xOf(end) - 8, canvas.height - 4);
  }
}

// The tracker's path over the last 30 s (left) beside the spectrum drawn sideways (right), both on one bpm
// axis, so the path runs into the peak it chose.
function drawTrack(view) {
  const canvas = document.getElementById("pulse-track");
  const ctx = canvas.getContext("2d");
  const box = { x: 40, y: 8, w: canvas.width - 50, h: canvas.height - 28 };
  frame(ctx, canvas, box);
  const pathW = Math.round(box.w * 0.62);
  const spec = { x: box.x + pathW + 10, w: box.w - pathW - 14 };
  const yOf = (bpm) => (bpm === null ? null : box.y + box.h * (1 - (bpm - BAND_BPM[0]) / (BAND_BPM[1] - BAND_BPM[0])));
  for (let bpm = 60; bpm < BAND_BPM[1]; bpm += 20) {
    ctx.fillText(String(bpm), 8, yOf(bpm) + 4);
    polyline(ctx, [box.x, box.x + box.w], [yOf(bpm), yOf(bpm)], "#222", 1);
  }
  ctx.fillStyle = "#888";
  ctx.fillText(`-${PATH_S} s`, box.x, canvas.height - 4);
  ctx.fillText("now", box.x + pathW - 20, canvas.height - 4);
  ctx.fillText("spectrum", spec.x, canvas.height - 4);
  polyline(ctx, [spec.x - 5, spec.x - 5], [box.y, box.y + box.h], "#333", 1);
  if (view === null) return;
  const xOf = (age) => box.x + pathW * (1 - age / PATH_S);
  // Spectra: the newest window faint, the window the published rate describes solid.
  const sx = (p) => (p === null ? null : spec.x + spec.w * p);
  polyline(ctx, view.spectrum.newest_power.map(sx), view.spectrum.bpm.map(yOf), "#555", 1);
  polyline(ctx, view.spectrum.chosen_power.map(sx), view.spectrum.bpm.map(yOf), "#6cf", 1.5);
  // The path: published rates solid, the tracker's provisional ones dashed, low-confidence points amber.
  const path = view.path;
  polyline(ctx, path.age_s.map(xOf), path.bpm.map(yOf), "#f66", 2);
  const n = path.bpm.length;
  if (n > 0 && view.ahead.bpm.length > 0) {
    polyline(ctx, [path.age_s[n - 1], ...view.ahead.age_s].map(xOf), [path.bpm[n - 1], ...view.ahead.bpm].map(yOf),
      "#f99", 1.5, [4, 3]);
  }
  const low = view.peak.low_confidence_below;
  for (let i = 0; i < n; i++) {
    ctx.fillStyle = path.confidence[i] < low ? "#fb4" : "#f66";
    ctx.beginPath();
    ctx.arc(xOf(path.age_s[i]), yOf(path.bpm[i]), path.confidence[i] < low ? 3 : 2, 0, 2 * Math.PI);
    ctx.fill();
  }
  // The chosen peak: a line across both panels at its rate, a diamond on the spectrum it was chosen from.
  const peak = view.peak;
  if (peak.bpm === null) return;
  const colour = peak.low_confidence ? "#fb4" : "#fd3";
  const y = yOf(peak.bpm);
  polyline(ctx, [xOf(view.spectrum.chosen_age_s), box.x + box.w], [y, y], colour, 1, [2, 3]);
  let k = 0;
  view.spectrum.bpm.forEach((b, i) => { if (Math.abs(b - peak.bpm) < Math.abs(view.spectrum.bpm[k] - peak.bpm)) k = i; });
  const px = sx(view.spectrum.chosen_power[k] ?? 0);
  ctx.fillStyle = colour;
  ctx.beginPath();
  ctx.moveTo(px, y - 6); ctx.lineTo(px + 6, y); ctx.lineTo(px, y + 6); ctx.lineTo(px - 6, y);
  ctx.closePath();
  ctx.fill();
  ctx.font = "bold 12px sans-serif";
  const label = `${peak.bpm.toFixed(0)} bpm` + (peak.low_confidence ? " (low confidence)" : "");
  ctx.fillText(label, spec.x, y < box.y + 20 ? y + 16 : y - 8);
}

async function pollPulse() {
  const state = document.getElementById("pulse-state");
  try {
    const response = await fetch("/api/pulse", { cache: "no-store" });
    const pulse = await response.json();
    const view = pulse.view;
    if (view === null) {
      state.textContent = pulse.flags.length ? `no rate: ${pulse.flags.join(", ")}` : "no pulse yet";
      state.className = "pulse-state";
    } else {
      const c = view.peak.confidence.toFixed(2);
      const bpm = view.peak.bpm === null ? "--" : view.peak.bpm.toFixed(0);
      state.textContent = `${pulse.method}: ${bpm} bpm, confidence ${c}` +
        (view.peak.low_confidence ? " (low)" : "");
      state.className = view.peak.low_confidence ? "pulse-state" : "pulse-state good";
    }
    drawWave(view);
    drawTrack(view);
  } catch (err) {
    state.textContent = "disconnected";
    state.className = "pulse-state";
  }
  setTimeout(pollPulse, PULSE_POLL_MS);
}

poll();
pollPulse();
