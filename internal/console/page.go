package console

import (
	"crypto/rand"
	"encoding/base64"
	"html/template"
	"net/http"
	"time"
)

// pollEvery is how often the page asks for a snapshot: rates over one
// second are what an operator reads during an incident, and one small JSON
// answer a second per open console costs the server nothing it would notice.
const pollEvery = time.Second

// keep is how many snapshots the plots show (two minutes at pollEvery).
const keep = 120

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		http.Error(w, "no randomness for the page's nonce", http.StatusInternalServerError)
		return
	}
	// URL-safe: html/template writes a "+" in an attribute as "&#43;",
	// which a browser decodes but the page's own test compared byte for byte.
	nonce := base64.RawURLEncoding.EncodeToString(b)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Only the page's own script and style run, and the script may only
	// fetch from the console's origin.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+
		"'; connect-src 'self'; img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	_ = pageTmpl.Execute(w, struct {
		Nonce        string
		Live, Logout string
		Every, Keep  int
		Script       template.JS
	}{nonce, PathLive, "/ops/admin/logout", int(pollEvery / time.Millisecond), keep, template.JS(script)})
}

// script is the page's whole client: it polls the live snapshot, turns two
// cumulative polls into rates, and draws every table and plot with DOM
// calls (textContent, never HTML), so a route name or a scrubber reason
// cannot inject anything.
const script = `
const cfg = document.getElementById('cfg').dataset;
const every = +cfg.every, keep = +cfg.keep;
const $ = id => document.getElementById(id);
const history = [];
const kinds = ['served', 'shed', 'fallback', 'refused', 'errors'];
const styles = {served: ['#1f77b4', ''], shed: ['#d62728', '5 3'], fallback: ['#ff7f0e', '1.5 2'], refused: ['#7f7f7f', '8 2 1.5 2'], errors: ['#9467bd', '3 3']};
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const svgNS = 'http://www.w3.org/2000/svg';
const fmt = v => v === undefined || isNaN(v) ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);

// rates of row (by name) in list between snapshots a and b, per second.
function rates(a, b, list, name) {
  const find = (s, n) => (s[list] || []).find(x => x.name === n) || {};
  const x = find(a, name), y = find(b, name), dt = b.at - a.at;
  const out = {};
  for (const k of kinds) out[k] = dt > 0 ? Math.max(0, ((y[k] || 0) - (x[k] || 0)) / dt) : NaN;
  return out;
}

// plot draws series (arrays of numbers, one per snapshot pair) as lines.
function plot(series, width, height) {
  const s = document.createElementNS(svgNS, 'svg');
  s.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  s.setAttribute('class', 'plot');
  s.setAttribute('role', 'img');
  let max = 1;
  for (const k in series) for (const v of series[k]) if (v > max) max = v;
  const base = document.createElementNS(svgNS, 'line');
  base.setAttribute('x1', 0); base.setAttribute('x2', width); base.setAttribute('y1', height - 1); base.setAttribute('y2', height - 1);
  base.setAttribute('stroke', '#dde3ea'); s.appendChild(base);
  for (const k in series) {
    const ys = series[k];
    if (ys.length < 2) continue;
    const pts = ys.map((v, i) => ((width * (i + keep - ys.length)) / (keep - 1)).toFixed(1) + ',' + (height - 2 - (height - 4) * v / max).toFixed(1));
    const p = document.createElementNS(svgNS, 'polyline');
    p.setAttribute('points', pts.join(' '));
    p.setAttribute('fill', 'none');
    p.setAttribute('stroke', (styles[k] || ['#1f77b4'])[0]);
    p.setAttribute('stroke-width', 1.6);
    if ((styles[k] || [])[1]) p.setAttribute('stroke-dasharray', styles[k][1]);
    s.appendChild(p);
  }
  const t = document.createElementNS(svgNS, 'title');
  t.textContent = 'peak ' + fmt(max) + ' per second over the last ' + Math.round(keep * every / 1000) + ' s';
  s.appendChild(t);
  return s;
}

function fill(id, head, rows) {
  const t = $(id);
  t.replaceChildren();
  const tr = el('tr');
  for (const h of head) tr.appendChild(el('th', h));
  t.appendChild(tr);
  for (const r of rows) {
    const tr = el('tr');
    for (const c of r) {
      const td = el('td');
      if (c instanceof Node) td.appendChild(c); else td.textContent = c;
      tr.appendChild(td);
    }
    t.appendChild(tr);
  }
}

function countsTable(id, list, withTier) {
  const now = history[history.length - 1], prev = history[history.length - 2] || now;
  const rows = (now[list] || []).map(r => {
    const x = rates(prev, now, list, r.name);
    const series = {};
    for (const k of ['served', 'shed', 'fallback']) series[k] = [];
    for (let i = 1; i < history.length; i++) {
      const y = rates(history[i - 1], history[i], list, r.name);
      for (const k in series) series[k].push(y[k]);
    }
    const cells = [r.name];
    if (withTier) cells.push(r.tier || '–');
    for (const k of kinds) cells.push(fmt(x[k]));
    cells.push(plot(series, 240, 36));
    return cells;
  });
  const head = ['name'];
  if (withTier) head.push('tier');
  fill(id, head.concat(['served/s', 'shed/s', 'fallback/s', 'refused/s', 'errors/s', 'last two minutes']), rows);
}

function render() {
  const now = history[history.length - 1], prev = history[history.length - 2] || now;
  countsTable('tiers', 'tiers', false);
  countsTable('routes', 'routes', true);
  fill('scrub', ['route', 'state', 'detected', 'mode', 'since', 'proof-of-work bits', 'evidence'],
    now.scrub.map(r => [r.route, el('span', r.state, 'state ' + r.state), r.detected, r.mode, new Date(r.since).toLocaleTimeString(), String(r.difficulty_bits), r.reason || '–']));
  const room = now.waiting_room;
  if (room) {
    const dt = now.at - prev.at;
    const per = k => dt > 0 ? fmt(Math.max(0, ((room[k] || 0) - ((prev.waiting_room || {})[k] || 0)) / dt)) : '–';
    const waiting = history.map(s => (s.waiting_room || {}).waiting || 0);
    fill('room', ['waiting', 'logins in flight', 'admit rate (logins/s)', 'oldest wait (s)', 'admitted/s', 'rejected/s', 'gave up/s', 'waiting, last two minutes'],
      [[fmt(room.waiting), fmt(room.in_flight), fmt(room.admit_rate), fmt(room.oldest_wait_seconds), per('admitted'), per('rejected'), per('given_up'), plot({served: waiting}, 240, 36)]]);
  } else fill('room', ['waiting room'], [['not running (no identity provider)']]);
  fill('breakers', ['upstream', 'state'], now.breakers.map(b => [b.upstream, el('span', b.state, 'state ' + b.state)]));
  fill('journal', ['kind', 'entries waiting for the core', 'last two minutes'],
    now.journal.map(j => [j.kind, fmt(j.pending), plot({shed: history.map(s => ((s.journal || []).find(x => x.kind === j.kind) || {}).pending || 0)}, 240, 36)]));
  fill('faults', ['component', 'faults in force'], now.faults.map(f => [f.component, f.detail ? el('span', f.detail, 'state open') : 'healthy']));
  $('updated').textContent = 'updated ' + new Date(now.at * 1000).toLocaleTimeString();
}

async function poll() {
  try {
    const r = await fetch(cfg.live, {credentials: 'same-origin', headers: {Accept: 'application/json'}});
    if (r.status === 401) { $('problem').textContent = 'Your admin session has ended: reload the page to log in again.'; return; }
    if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
    history.push(await r.json());
    if (history.length > keep) history.shift();
    $('problem').textContent = '';
    render();
  } catch (e) {
    $('problem').textContent = 'The console cannot reach the server: ' + e.message;
  }
  setTimeout(poll, every);
}
poll();
`

var pageTmpl = template.Must(template.New("console").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rempart ops console</title>
<style nonce="{{.Nonce}}">
:root { --ink:#1d2433; --muted:#5f6b7a; --line:#dde3ea; --bg:#f6f8fa; }
* { box-sizing:border-box; }
body { margin:0; font:14px/1.45 system-ui, sans-serif; color:var(--ink); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:20px 16px 40px; }
h1 { font-size:22px; margin:0 0 4px; }
h2 { font-size:16px; margin:24px 0 8px; }
header { display:flex; flex-wrap:wrap; gap:8px 20px; align-items:baseline; }
.note { color:var(--muted); font-size:12px; }
#problem { color:#b42318; font-weight:600; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 12px; overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:middle; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td { font-variant-numeric:tabular-nums; }
svg.plot { width:240px; height:36px; display:block; }
.key span { margin-right:14px; white-space:nowrap; }
.key svg { width:26px; height:8px; vertical-align:middle; margin-right:4px; }
.state { padding:1px 8px; border-radius:999px; font-weight:600; font-size:12px; }
.state.attack, .state.open { background:#fde7e5; color:#b42318; }
.state.flash_crowd, .state.half-open { background:#fbf0c4; color:#7a5b00; }
.state.normal, .state.closed { background:#e3f4e6; color:#1e7d34; }
button { font:inherit; }
</style>
</head>
<body><main>
<header>
  <h1>rempart ops console</h1>
  <span class="note" id="updated">waiting for the first numbers…</span>
  <form method="post" action="{{.Logout}}"><button type="submit">Log out</button></form>
</header>
<p id="problem" role="alert"></p>
<p class="note">Rates per second between the last two polls (every {{.Every}} ms), from the same counters as /metrics.
<span class="key">
  <span><svg viewBox="0 0 26 8" aria-hidden="true"><line x1="0" y1="4" x2="26" y2="4" stroke="#1f77b4" stroke-width="2"/></svg>served</span>
  <span><svg viewBox="0 0 26 8" aria-hidden="true"><line x1="0" y1="4" x2="26" y2="4" stroke="#d62728" stroke-width="2" stroke-dasharray="5 3"/></svg>shed (429/503)</span>
  <span><svg viewBox="0 0 26 8" aria-hidden="true"><line x1="0" y1="4" x2="26" y2="4" stroke="#ff7f0e" stroke-width="2" stroke-dasharray="1.5 2"/></svg>answered by a fallback</span>
</span></p>
<h2>Per tier</h2><div class="card"><table id="tiers"></table></div>
<h2>Per channel (route)</h2><div class="card"><table id="routes"></table></div>
<h2>Scrubber, per route</h2><div class="card"><table id="scrub"></table></div>
<h2>Waiting room</h2><div class="card"><table id="room"></table></div>
<h2>Circuit breakers</h2><div class="card"><table id="breakers"></table></div>
<h2>Journal backlog</h2><div class="card"><table id="journal"></table></div>
<h2>Faults in force</h2><div class="card"><table id="faults"></table></div>
<div id="cfg" hidden data-live="{{.Live}}" data-every="{{.Every}}" data-keep="{{.Keep}}"></div>
</main>
<script nonce="{{.Nonce}}">{{.Script}}</script>
</body>
</html>
`))
