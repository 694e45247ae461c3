// Live numbers and a 60 s chart from /api/live; plain canvas, nothing loaded from elsewhere.
"use strict";

const POLL_MS = 500;

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

poll();
