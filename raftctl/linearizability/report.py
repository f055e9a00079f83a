"""A checked history as one self-contained HTML page: no network, inline CSS, JS and SVG.

The page says the verdict, draws each anomaly (the operations of its shortest failing prefix,
one lane per process, numbered in the longest linearization found, the culprit in red) and
explains it; then, drawn by its script from the embedded data, every client's operations on a
time line with faults and leader changes as markers (zoom with the wheel, drag to pan, hover for
an operation) and the latency of every operation over time. History text is data, never markup:
it is escaped in the HTML and set as text by the script.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from .checker import ANOMALY, OK, Anomaly, Verdict
from .history import History, Operation
from .models import Model

_STATUS_CODE = {"ok": "o", "fail": "f", "info": "i", "open": "i"}
_VERDICT_WORDS = {OK: "linearizable", ANOMALY: "NOT linearizable", "unknown": "unknown (budget exhausted)"}


def html_report(history: History, verdict: Verdict, *, title: str = "linearizability report") -> str:
    """The whole page for ``history`` and its ``verdict``."""
    culprits = {anomaly.op.id for anomaly in verdict.anomalies}
    sections = [
        f"<header><h1>{_e(title)}</h1>{_summary(history, verdict)}</header>",
        *(_anomaly_section(number, anomaly, verdict.model) for number, anomaly in enumerate(verdict.anomalies, 1)),
    ]
    if verdict.unknown_keys:
        names = ", ".join(f"{_e(k.key)} ({k.exhausted})" for k in verdict.keys if k.exhausted is not None)
        sections.append(f'<section id="unknown"><h2>Keys the checker gave up on</h2><p>{names}</p></section>')
    sections.append(_TIMELINE_SECTION)
    return _PAGE.format(
        title=_e(title),
        style=_STYLE,
        body="\n".join(sections),
        data=_script_json(_timeline_data(history, culprits)),
        script=_SCRIPT,
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element whatever strings it holds."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _summary(history: History, verdict: Verdict) -> str:
    times = [op.invoke_time for op in history.operations] + [e.time for e in history.events]
    span = f"{max(times) - min(times):.1f} s" if times else "0 s"
    counts = {status: 0 for status in ("ok", "fail", "info", "open")}
    for op in history.operations:
        counts[op.status] += 1
    faults = sum(e.type == "fault" for e in history.events)
    leaders = sum(e.type == "leader" for e in history.events)
    return (
        f'<p class="verdict {verdict.status}" id="verdict">{_VERDICT_WORDS[verdict.status]}</p>'
        f"<p>{len(history.operations):,} operations over {span} by {len({op.process for op in history.operations})} "
        f"processes on {_count(len(verdict.keys), 'key')} (model {_e(verdict.model.name)}): {counts['ok']:,} ok, "
        f"{counts['fail']:,} failed, {counts['info'] + counts['open']:,} with an unknown outcome; "
        f"{_count(faults, 'fault')}, {_count(leaders, 'leader change')}. "
        f"{_count(len(verdict.anomalies), 'key')} with an anomaly, {len(verdict.unknown_keys)} given up on.</p>"
    )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _anomaly_section(number: int, anomaly: Anomaly, model: Model) -> str:
    order = {step.op.id: n for n, step in enumerate(anomaly.linearized, 1)}
    rows = "".join(
        f"<tr><td>{n}</td><td>{_e(step.op.process)}</td><td>{_e(step.op.describe())}</td>"
        f"<td>{_lines(step.op)}</td><td>{_e(model.describe(step.state))}</td></tr>"
        for n, step in enumerate(anomaly.linearized, 1)
    )
    rows += "".join(
        f'<tr class="{"culprit" if op.id == anomaly.op.id else "unplaced"}"><td>–</td><td>{_e(op.process)}</td>'
        f"<td>{_e(op.describe())}</td><td>{_lines(op)}</td><td>not placed</td></tr>"
        for op in anomaly.unplaced
    )
    start = min(op.invoke_time for op in anomaly.prefix)
    end = max(op.complete_time or op.invoke_time for op in anomaly.prefix)
    return (
        f'<section class="anomaly" id="anomaly-{number}" data-key="{_e(anomaly.key)}">'
        f"<h2>Anomaly {number}: key {_e(anomaly.key)}</h2>"
        f'<p class="explanation">{_e(anomaly.explanation)}</p>'
        f"{_anomaly_svg(anomaly.prefix, order, anomaly.op)}"
        f'<p><button class="zoom" data-start="{start}" data-end="{end}">show on the time line</button></p>'
        f'<details{" open" if len(anomaly.linearized) <= 20 else ""}><summary>the longest linearization found '
        f"({_count(len(anomaly.linearized), 'operation')}), then what it could not place</summary>"
        f"<table><thead><tr><th>#</th><th>process</th><th>operation</th><th>lines</th><th>value after</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></details></section>"
    )


def _lines(op: Operation) -> str:
    return f"{op.invoke_line}–{op.complete_line if op.complete_line is not None else ''}"


def _anomaly_svg(prefix: Sequence[Operation], order: dict[int, int], culprit: Operation) -> str:
    """The prefix's operations as bars on process lanes, numbered in linearization order."""
    lanes = _lanes(prefix)
    start = min(op.invoke_time for op in prefix)
    known_end = max(op.complete_time if op.complete_time is not None else op.invoke_time for op in prefix)
    span = (known_end - start) or 1.0
    open_end = known_end + span * 0.15
    left, lane_height = 110, 34
    width = min(max(760, 16 * len(prefix)), 4000)
    height = lane_height * len(lanes) + 10

    def x(t: float) -> float:
        return round(left + (t - start) / (span * 1.15) * width, 1)

    parts = [f'<div class="scroll"><svg class="anomaly-chart" viewBox="0 0 {left + width + 20} {height}" '
             f'width="{left + width + 20}" height="{height}" role="img">']
    for process, lane in lanes.items():
        y = lane * lane_height + 5
        parts.append(f'<text x="4" y="{y + 20}" class="lane">process {_e(process)}</text>')
    for op in prefix:
        y = lanes[op.process] * lane_height + 5
        x0 = x(op.invoke_time)
        x1 = x(op.complete_time if op.status == "ok" else open_end)
        kind = ("culprit" if op.id == culprit.id else "placed" if op.id in order
                else "failed" if op.status == "fail" else "unplaced")
        number = f"{order[op.id]}." if op.id in order else ""
        label = _fitting(f"{number} {op.describe()}".strip(), number, x1 - x0)
        parts.append(
            f'<g class="op {kind}"><title>{_e(op.describe())} — process {_e(op.process)}, lines {_lines(op)}</title>'
            f'<rect x="{x0}" y="{y}" width="{max(x1 - x0, 2)}" height="{lane_height - 8}" rx="3"/>'
            f'<text x="{x0 + 3}" y="{y + 17}">{_e(label)}</text></g>')
    parts.append("</svg></div>")
    return "".join(parts)


def _fitting(label: str, short: str, room: float) -> str:
    """The label if a bar ``room`` pixels wide holds it, else ``short`` if that fits, else nothing
    (the bar's tooltip still says everything)."""
    for text in (label, short):
        if len(text) * 6.6 + 6 <= room:
            return text
    return ""


def _lanes(ops: Sequence[Operation]) -> dict[Any, int]:
    """A lane per process, in order of process (numbers first)."""
    processes = sorted({op.process for op in ops}, key=lambda p: (isinstance(p, str), p))
    return {process: lane for lane, process in enumerate(processes)}


def _timeline_data(history: History, culprits: set[int]) -> dict[str, Any]:
    times = [op.invoke_time for op in history.operations] + [e.time for e in history.events]
    origin = min(times) if times else 0.0
    lanes = _lanes(history.operations)
    ops = []
    for op in history.operations:
        lane = lanes[op.process]
        end = None if op.complete_time is None else round(op.complete_time - origin, 6)
        ops.append([lane, round(op.invoke_time - origin, 6), end, _STATUS_CODE[op.status], op.f, op.describe(),
                    1 if op.id in culprits else 0])
    events = [[round(e.time - origin, 6), e.type, e.describe(), e.node] for e in history.events]
    return {"origin": origin, "processes": [str(p) for p in lanes], "ops": ops, "events": events}


_TIMELINE_SECTION = """<section id="timeline-section"><h2>Operations by process</h2>
<p class="hint">Wheel: zoom · drag: pan · double-click: whole run · hover: the operation.
<span class="legend"><i class="ok"></i>ok <i class="fail"></i>failed <i class="info"></i>unknown outcome
<i class="culprit"></i>anomaly <i class="fault"></i>fault <i class="leader"></i>leader change</span></p>
<div class="chart"><canvas id="timeline"></canvas></div>
<h2>Latency over time</h2><div class="chart"><canvas id="latency"></canvas></div>
<div id="tooltip" hidden></div><pre id="script-errors" hidden></pre></section>"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>{style}</style></head>
<body>
{body}
<script type="application/json" id="history-data">{data}</script>
<script>{script}</script>
</body></html>
"""

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}
.verdict{font-size:1.3em;font-weight:bold;display:inline-block;padding:.1em .6em;border-radius:4px;color:#fff}
.verdict.ok{background:#2a7d2e}.verdict.anomaly{background:#c0262d}.verdict.unknown{background:#b8860b}
.anomaly{border-left:4px solid #c0262d;padding-left:1em}.explanation{font-weight:500}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}
tr.culprit td{color:#c0262d;font-weight:bold}tr.unplaced td{color:#b06000}
div.scroll{overflow-x:auto}svg.anomaly-chart{font:12px system-ui,sans-serif}svg .lane{fill:#555}
svg .op rect{stroke:#333;stroke-width:.5}svg .placed rect{fill:#cfe8cf}svg .culprit rect{fill:#f4b4b4;stroke:#c0262d;stroke-width:2}
svg .unplaced rect{fill:#fde0b0}svg .failed rect{fill:#eee}svg .op text{fill:#111}
.chart{position:relative;border:1px solid #ddd}canvas{display:block;width:100%}
#tooltip{position:fixed;background:#222;color:#fff;padding:3px 7px;border-radius:3px;font-size:12px;pointer-events:none;white-space:pre}
.hint{color:#666}.legend i{display:inline-block;width:12px;height:10px;margin:0 3px 0 10px;vertical-align:middle}
.legend .ok{background:#6aa86f}.legend .fail{background:#bbb}.legend .info{background:#e0a030}
.legend .culprit{background:#d62728}.legend .fault{background:#b03cb0}.legend .leader{background:#3b6fd0}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var errors = document.getElementById("script-errors");
  window.addEventListener("error", function (e) { errors.hidden = false; errors.textContent += e.message + "\n"; });
  var data = JSON.parse(document.getElementById("history-data").textContent);
  var ops = data.ops, events = data.events, lanes = data.processes;
  var LANE = 14, TOP = 34, LEFT = 70, COLORS = {o: "#6aa86f", f: "#bbb", i: "#e0a030"};
  var end = 0;
  ops.forEach(function (op) { end = Math.max(end, op[1], op[2] === null ? 0 : op[2]); });
  events.forEach(function (ev) { end = Math.max(end, ev[0]); });
  end = end || 1;
  var view = {from: 0, to: end * 1.02};
  var byLane = lanes.map(function () { return []; });
  ops.forEach(function (op, i) { byLane[op[0]].push(i); });
  var leaderColors = {}, palette = ["#3b6fd0", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22"];
  function leaderColor(node) {
    if (node === null) { return "#ddd"; }
    if (!(node in leaderColors)) { leaderColors[node] = palette[Object.keys(leaderColors).length % palette.length]; }
    return leaderColors[node];
  }
  function opEnd(op) { return op[2] === null ? end * 1.02 : op[2]; }

  function setup(canvas, height) {
    var ratio = window.devicePixelRatio || 1, width = canvas.parentNode.clientWidth || 1000;
    canvas.width = width * ratio; canvas.height = height * ratio; canvas.style.height = height + "px";
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.font = "11px system-ui, sans-serif";
    return {ctx: ctx, width: width, height: height};
  }
  function xOf(t, width) { return LEFT + (t - view.from) / (view.to - view.from) * (width - LEFT - 10); }
  function tOf(x, width) { return view.from + (x - LEFT) / (width - LEFT - 10) * (view.to - view.from); }

  function markers(ctx, width, height) {
    events.forEach(function (ev) {
      if (ev[1] !== "fault") { return; }
      var x = xOf(ev[0], width);
      if (x < LEFT || x > width) { return; }
      ctx.strokeStyle = "#b03cb0"; ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(x, 12); ctx.lineTo(x, height); ctx.stroke(); ctx.setLineDash([]);
      ctx.fillStyle = "#b03cb0"; ctx.fillText(ev[2].split(" ")[0], x + 2, height - 14);
    });
  }

  var timeline = document.getElementById("timeline"), latency = document.getElementById("latency");
  var drawnOps = 0;
  function drawTimeline() {
    var s = setup(timeline, TOP + lanes.length * LANE + 20), ctx = s.ctx, width = s.width;
    ctx.clearRect(0, 0, width, s.height);
    // leader changes: a band along the top, one color per leader
    var leaders = events.filter(function (ev) { return ev[1] === "leader"; });
    leaders.forEach(function (ev, i) {
      var x0 = Math.max(LEFT, xOf(ev[0], width));
      var x1 = Math.min(width, xOf(i + 1 < leaders.length ? leaders[i + 1][0] : view.to, width));
      if (x1 <= x0) { return; }
      ctx.fillStyle = leaderColor(ev[3]); ctx.fillRect(x0, 14, x1 - x0, 10);
      ctx.fillStyle = "#222"; if (x1 - x0 > 30) { ctx.fillText(ev[3] === null ? "no leader" : ev[3], x0 + 2, 12); }
    });
    ctx.fillStyle = "#555"; ctx.fillText("leader", 4, 23);
    drawnOps = 0;
    var culprits = [];
    byLane.forEach(function (indexes, lane) {
      var y = TOP + lane * LANE;
      ctx.fillStyle = "#555"; ctx.fillText("p " + lanes[lane], 4, y + 10);
      indexes.forEach(function (i) {
        var op = ops[i], t0 = op[1], t1 = opEnd(op);
        if (t1 < view.from || t0 > view.to) { return; }
        var x0 = Math.max(LEFT, xOf(t0, width)), x1 = Math.min(width, xOf(t1, width));
        ctx.fillStyle = COLORS[op[3]]; ctx.fillRect(x0, y, Math.max(1, x1 - x0), LANE - 3);
        drawnOps += 1;
        if (op[6]) { culprits.push([x0, y, Math.max(3, x1 - x0)]); }
      });
    });
    culprits.forEach(function (c) {
      ctx.fillStyle = "#d62728"; ctx.fillRect(c[0], c[1] - 1, c[2], LANE - 1);
      ctx.strokeStyle = "#d62728"; ctx.strokeRect(c[0] - 3, c[1] - 3, c[2] + 6, LANE + 3);
    });
    markers(ctx, width, s.height);
    axis(ctx, width, s.height - 4);
  }

  function axis(ctx, width, y) {
    ctx.fillStyle = "#555";
    for (var k = 0; k <= 8; k++) {
      var t = view.from + (view.to - view.from) * k / 8, x = xOf(t, width);
      ctx.fillText(t.toFixed(t < 10 ? 2 : 1) + " s", Math.min(x, width - 40), y);
    }
  }

  function drawLatency() {
    var s = setup(latency, 200), ctx = s.ctx, width = s.width, h = s.height - 20;
    ctx.clearRect(0, 0, width, s.height);
    var max = 0;
    ops.forEach(function (op) { if (op[2] !== null) { max = Math.max(max, op[2] - op[1]); } });
    var top = Math.log10(Math.max(max * 1000, 1) * 1.2);
    function yOf(ms) { return h - Math.log10(Math.max(ms, 1)) / top * (h - 10); }
    ctx.strokeStyle = "#eee"; ctx.fillStyle = "#555";
    for (var ms = 1; ms <= Math.pow(10, top); ms *= 10) {
      var y = yOf(ms);
      ctx.beginPath(); ctx.moveTo(LEFT, y); ctx.lineTo(width, y); ctx.stroke();
      ctx.fillText(ms >= 1000 ? ms / 1000 + " s" : ms + " ms", 4, y + 4);
    }
    ops.forEach(function (op) {
      if (op[2] === null || op[2] < view.from || op[1] > view.to) { return; }
      ctx.fillStyle = op[6] ? "#d62728" : COLORS[op[3]];
      ctx.fillRect(xOf(op[2], width) - 1, yOf((op[2] - op[1]) * 1000) - 1, op[6] ? 5 : 2, op[6] ? 5 : 2);
    });
    markers(ctx, width, h);
    axis(ctx, width, s.height - 4);
  }

  function draw() { drawTimeline(); drawLatency(); }

  function zoom(from, to) {
    var pad = (to - from) * 0.2 || 1;
    view.from = Math.max(0, from - pad); view.to = to + pad; draw();
  }
  [timeline, latency].forEach(function (canvas) {
    canvas.addEventListener("wheel", function (e) {
      e.preventDefault();
      var width = canvas.parentNode.clientWidth, t = tOf(e.offsetX, width);
      var factor = e.deltaY > 0 ? 1.25 : 0.8;
      view.from = t - (t - view.from) * factor; view.to = t + (view.to - t) * factor; draw();
    }, {passive: false});
    var dragging = null;
    canvas.addEventListener("mousedown", function (e) { dragging = {x: e.clientX, from: view.from, to: view.to}; });
    window.addEventListener("mouseup", function () { dragging = null; });
    window.addEventListener("mousemove", function (e) {
      if (!dragging) { return; }
      var dt = (e.clientX - dragging.x) / (canvas.parentNode.clientWidth - LEFT) * (dragging.to - dragging.from);
      view.from = dragging.from - dt; view.to = dragging.to - dt; draw();
    });
    canvas.addEventListener("dblclick", function () { view.from = 0; view.to = end * 1.02; draw(); });
  });
  var tooltip = document.getElementById("tooltip");
  timeline.addEventListener("mousemove", function (e) {
    var width = timeline.parentNode.clientWidth, lane = Math.floor((e.offsetY - TOP) / LANE), t = tOf(e.offsetX, width);
    var text = null, slack = (view.to - view.from) / width * 3;
    if (lane >= 0 && lane < lanes.length) {
      byLane[lane].forEach(function (i) {
        var op = ops[i];
        if (op[1] - slack <= t && t <= opEnd(op) + slack) {
          text = "process " + lanes[lane] + ": " + op[5] + "\n" + op[1].toFixed(3) + " s → " +
            (op[2] === null ? "never answered" : op[2].toFixed(3) + " s (" + ((op[2] - op[1]) * 1000).toFixed(1) + " ms)");
        }
      });
    } else if (e.offsetY < TOP) {
      events.forEach(function (ev) { if (Math.abs(ev[0] - t) <= slack * 2) { text = ev[0].toFixed(3) + " s: " + ev[2]; } });
    }
    tooltip.hidden = text === null;
    if (text !== null) { tooltip.textContent = text; tooltip.style.left = (e.clientX + 12) + "px"; tooltip.style.top = (e.clientY + 12) + "px"; }
  });
  timeline.addEventListener("mouseleave", function () { tooltip.hidden = true; });
  Array.prototype.forEach.call(document.querySelectorAll("button.zoom"), function (button) {
    button.addEventListener("click", function () {
      zoom(Number(button.dataset.start) - data.origin, Number(button.dataset.end) - data.origin);
      timeline.scrollIntoView();
    });
  });
  window.addEventListener("resize", draw);
  draw();
  document.body.dataset.rendered = "yes";
  document.body.dataset.drawnOps = String(drawnOps);
})();
"""
