// Headwater ops page: polls the server's JSON (/api/state every interval, /api/history for the
// chart points it does not have yet) and draws everything itself as DOM and SVG. No library, no
// request to anywhere but this server; every value from the server is set as text, never as HTML.
'use strict'

const SVG = 'http://www.w3.org/2000/svg'
const SPAN = 3600 // seconds of history the charts show at most
const PALETTE = ['#0969da', '#1f883d', '#8250df', '#bf3989', '#bc4c00', '#1b7c83', '#6e7781', '#cf222e',
  '#4d2d00', '#0550ae', '#116329', '#953800']
const page = { topology: null, points: [], updates: 0, colours: new Map(), interval: 2000 }

// --- small helpers ------------------------------------------------------------------------
function el (tag, attrs = {}, text) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  if (text !== undefined) node.textContent = text
  return node
}
function svg (tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  if (text !== undefined) node.textContent = text
  return node
}
function cell (row, text, cls) {
  const td = el('td', cls ? { class: cls } : {}, text)
  row.appendChild(td)
  return td
}
function num (value, digits = 0) {
  if (value === null || value === undefined) return ''
  return Number(value).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}
function rate (value) { return value === null || value === undefined ? '' : num(value, 1) }
function seconds (value) {
  if (value === null || value === undefined) return 'never'
  return value < 600 ? num(value, 1) : `${Math.round(value / 60)}m`
}
function sum (values) {
  const known = values.filter((v) => v !== null && v !== undefined)
  return known.length ? known.reduce((a, b) => a + b, 0) : null
}
function statusBadge (status) { return el('span', { class: 'status', 'data-status': status }, status) }
function colourOf (name) {
  if (!page.colours.has(name)) page.colours.set(name, PALETTE[page.colours.size % PALETTE.length])
  return page.colours.get(name)
}
async function getJson (path) {
  const response = await fetch(path, { cache: 'no-store' })
  if (!response.ok) throw new Error(`${path}: ${response.status}`)
  return response.json()
}

// --- the topology graph ---------------------------------------------------------------------
const COL = 158; const ROW = 54; const W = 138; const H = 40; const PAD = 12

function drawGraph () {
  const { graph } = page.topology
  const root = document.getElementById('graph')
  root.replaceChildren()
  const rows = Math.max(1, ...graph.nodes.map((n) => n.row + 1))
  const width = PAD * 2 + graph.layers * COL - (COL - W); const height = PAD * 2 + rows * ROW - (ROW - H)
  root.setAttribute('viewBox', `0 0 ${width} ${height}`) // scaled down to the panel's width, never up
  root.setAttribute('width', width)
  root.setAttribute('height', height)
  const at = new Map(graph.nodes.map((n) => [n.id, { x: PAD + n.layer * COL, y: PAD + n.row * ROW }]))
  for (const edge of graph.edges) {
    const a = at.get(edge.source); const b = at.get(edge.target)
    const x1 = a.x + W; const y1 = a.y + H / 2; const x2 = b.x; const y2 = b.y + H / 2
    const bend = Math.max(20, (x2 - x1) / 2)
    const path = svg('path', { class: edge.side ? 'edge side' : 'edge',
      d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` })
    if (edge.label) path.appendChild(svg('title', {}, edge.label))
    root.appendChild(path)
  }
  for (const node of graph.nodes) {
    const { x, y } = at.get(node.id)
    const group = svg('g', { class: `node ${node.kind}`, 'data-id': node.id, transform: `translate(${x},${y})` })
    const radius = node.kind === 'topic' ? 14 : node.kind === 'stage' ? 3 : 8
    group.appendChild(svg('rect', { width: W, height: H, rx: radius, ry: radius }))
    const label = node.label.length > 24 ? node.label.slice(0, 23) + '…' : node.label
    group.appendChild(svg('text', { x: 8, y: 16 }, label))
    group.appendChild(svg('text', { x: 8, y: 31, class: 'note' }, ''))
    group.appendChild(svg('title', {}, node.label))
    root.appendChild(group)
  }
}

function annotateGraph (state) {
  const groups = new Map((state.lag?.groups ?? []).map((g) => [g.role, g]))
  const stages = new Map(state.stages.map((s) => [s.stage, s]))
  const sinks = new Map(state.sinks.map((s) => [s.sink, s]))
  const topics = new Map() // topic → end offsets and append rate, from any reader of it
  for (const group of state.lag?.groups ?? []) {
    for (const p of group.partitions) {
      const key = `${p.topic}[${p.partition}]`
      if (!topics.has(p.topic)) topics.set(p.topic, new Map())
      topics.get(p.topic).set(key, p)
    }
  }
  for (const node of page.topology.graph.nodes) {
    const group = document.querySelector(`#graph g[data-id="${CSS.escape(node.id)}"]`)
    if (!group) continue
    const note = group.querySelector('.note')
    let text = ''; let bad = false
    if (node.kind === 'stage') {
      const stage = stages.get(node.id.slice('stage:'.length))
      if (stage) {
        const errors = stage.errors
        text = `${rate(stage.rates.ok) || '0.0'} ev/s · ${num(errors)} err`
        bad = errors > 0
        group.setAttribute('data-ok', stage.totals.ok ?? 0)
        group.setAttribute('data-errors', errors)
      }
    } else if (node.kind === 'topic') {
      const parts = topics.get(node.id.slice('topic:'.length))
      if (parts) {
        const values = [...parts.values()]
        text = `end ${num(sum(values.map((p) => p.end)))} · ${rate(sum(values.map((p) => p.produce_rate))) || '0.0'}/s`
      }
    } else if (node.reader) {
      const reader = groups.get(node.reader)
      if (reader) {
        const sink = node.kind === 'sink' ? sinks.get(node.id.slice('sink:'.length)) : null
        const rows = sink && sink.rates.rows_written !== null && sink.rates.rows_written !== undefined
          ? ` · ${rate(sink.rates.rows_written)} rows/s` : ''
        text = `${reader.status} · lag ${num(reader.lag)}${rows}`
        bad = reader.status !== 'OK'
      }
    }
    if (node.reader) {
      const reader = groups.get(node.reader)
      if (reader) group.setAttribute('data-status', reader.status)
    }
    note.textContent = text
    note.setAttribute('class', bad ? 'note bad' : 'note')
  }
}

// --- the lag table ----------------------------------------------------------------------------
function drawLag (report) {
  const body = document.querySelector('#lag tbody')
  body.replaceChildren()
  if (!report) return
  document.getElementById('lag-window').textContent = `over ${num(report.window_seconds, 0)} s`
  const overall = document.getElementById('overall')
  overall.textContent = report.status
  overall.setAttribute('data-status', report.status)
  for (const group of report.groups) {
    const parts = group.partitions
    const committed = parts.filter((p) => p.committed !== null).map((p) => p.committed)
    const catchUp = parts.map((p) => p.catch_up_seconds)
    const row = el('tr', {
      'data-role': group.role, 'data-group': group.group, 'data-status': group.status,
      'data-lag': group.lag, 'data-lag-seconds': group.lag_seconds, 'data-members': group.members,
      'data-committed': committed.length ? committed.reduce((a, b) => a + b, 0) : '',
      'data-end': parts.reduce((a, p) => a + p.end, 0),
    })
    cell(row, group.role).style.fontWeight = '600'
    cell(row, group.group)
    cell(row, [...new Set(parts.map((p) => p.topic))].join(', ') + ` (${parts.length})`, 'topics')
    cell(row, row.dataset.committed === '' ? '' : num(Number(row.dataset.committed)), 'n')
    cell(row, num(Number(row.dataset.end)), 'n')
    cell(row, num(group.lag), 'n')
    cell(row, seconds(group.lag_seconds), 'n')
    cell(row, rate(sum(parts.map((p) => p.produce_rate))), 'n')
    cell(row, rate(sum(parts.map((p) => p.consume_rate))), 'n')
    cell(row, catchUp.includes(null) ? 'never' : seconds(Math.max(0, ...catchUp)), 'n')
    cell(row, String(group.members), 'n')
    cell(row, '').appendChild(statusBadge(group.status))
    cell(row, group.rule, 'rule')
    body.appendChild(row)
  }
}

// --- stages, freshness, dead letters ----------------------------------------------------------
function drawStages (state) {
  const body = document.querySelector('#stages tbody')
  body.replaceChildren()
  for (const stage of state.stages) {
    const t = stage.totals; const r = stage.rates
    const row = el('tr', { 'data-stage': stage.stage, 'data-ok': t.ok ?? 0, 'data-errors': stage.errors })
    cell(row, stage.stage)
    for (const v of [r.ok, r.drop, r.deadletter]) cell(row, rate(v), 'n')
    for (const v of [t.ok, t.dropped, t.dead_lettered, t.timeouts, t.retries]) cell(row, num(v ?? 0), 'n')
    body.appendChild(row)
  }
  document.getElementById('worker-note').textContent = state.worker.up
    ? `from the worker's ${state.worker.metrics_url}, rates over ${num(state.window_seconds)} s`
    : `the worker's ${state.worker.metrics_url} does not answer: is the worker running?`
}

function drawFreshness (state) {
  document.getElementById('objective').textContent = num(state.freshness.objective_seconds)
  const body = document.querySelector('#freshness tbody')
  body.replaceChildren()
  for (const sink of state.sinks) {
    const row = el('tr', { 'data-sink': sink.sink })
    cell(row, sink.sink)
    cell(row, rate(sink.rates.rows_written), 'n')
    cell(row, num(sink.totals.rows_written ?? 0), 'n')
    cell(row, num(sink.totals.rows_rejected ?? 0), 'n')
    cell(row, sink.freshness_seconds === null ? 'n/a' : num(sink.freshness_seconds, 1), 'n')
    cell(row, sink.end_to_end_seconds === null ? 'n/a' : num(sink.end_to_end_seconds, 1), 'n')
    const verdict = sink.fresh === null ? 'n/a' : sink.fresh ? 'OK' : 'ERR'
    cell(row, '').appendChild(statusBadge(verdict))
    body.appendChild(row)
  }
}

function drawDeadLetters (dlq) {
  const total = document.getElementById('dlq-total')
  const reasons = document.querySelector('#dlq-reasons tbody')
  const latest = document.querySelector('#dlq-latest tbody')
  reasons.replaceChildren(); latest.replaceChildren()
  if (!dlq) { total.textContent = 'n/a'; return }
  document.getElementById('dlq-topic').textContent = dlq.topic
  total.textContent = `${num(dlq.total)} letter${dlq.total === 1 ? '' : 's'}`
  total.setAttribute('data-total', dlq.total)
  document.getElementById('dlq-note').textContent = dlq.skipped
    ? `(reasons counted over the ${num(dlq.read)} read since the page started; ${num(dlq.skipped)} passed over)`
    : `(reasons of the ${num(dlq.read)} read since the page started)`
  for (const r of dlq.by_reason) {
    const row = el('tr', { 'data-stage': r.stage, 'data-reason': r.reason, 'data-count': r.count })
    cell(row, r.stage); cell(row, r.reason); cell(row, num(r.count), 'n')
    reasons.appendChild(row)
  }
  for (const d of dlq.latest) {
    const row = el('tr')
    cell(row, d.time ? new Date(d.time / 1000).toLocaleString() : '')
    cell(row, d.stage); cell(row, d.reason); cell(row, d.event ?? '')
    cell(row, d.error, 'error')
    latest.appendChild(row)
  }
}

// --- charts -------------------------------------------------------------------------------------
function drawChart (id, series, now) {
  const root = document.getElementById(id)
  root.replaceChildren()
  const width = root.clientWidth || 400; const height = root.clientHeight || 170
  const left = 48; const right = 8; const top = 8; const bottom = 20
  root.setAttribute('viewBox', `0 0 ${width} ${height}`)
  const points = series.flatMap((s) => s.values)
  root.setAttribute('data-points', String(points.length))
  const start = points.length ? Math.max(now - SPAN, Math.min(...points.map((p) => p[0]))) : now - 60
  const end = Math.max(now, start + 1)
  const max = Math.max(1, ...points.map((p) => p[1])) * 1.1
  const x = (t) => left + (t - start) / (end - start) * (width - left - right)
  const y = (v) => top + (1 - v / max) * (height - top - bottom)
  const axis = svg('g', { class: 'axis' })
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4
    axis.appendChild(svg('line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) }))
    axis.appendChild(svg('text', { x: left - 4, y: y(v) + 3, 'text-anchor': 'end' }, v >= 100 ? num(v) : num(v, 1)))
  }
  const minutes = (end - start) / 60
  axis.appendChild(svg('text', { x: left, y: height - 4 }, minutes >= 1 ? `-${num(minutes)} min` : `-${num(end - start)} s`))
  axis.appendChild(svg('text', { x: width - right, y: height - 4, 'text-anchor': 'end' }, 'now'))
  root.appendChild(axis)
  for (const s of series) {
    if (s.values.length === 0) continue
    const d = s.values.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')
    const line = svg('path', { d, fill: 'none', stroke: s.colour, 'stroke-width': 1.6 })
    if (s.dashed) line.setAttribute('stroke-dasharray', '4 3')
    line.appendChild(svg('title', {}, s.name))
    root.appendChild(line)
  }
}

function seriesOf (field, roles, options = {}) {
  return roles.map((role) => ({
    name: `${role} ${options.suffix ?? ''}`.trim(), colour: colourOf(role), dashed: options.dashed,
    values: page.points.filter((p) => p.readers[role] && p.readers[role][field] !== null)
      .map((p) => [p.at, p.readers[role][field]]),
  }))
}

function drawCharts (now) {
  const roles = [...new Set(page.points.flatMap((p) => Object.keys(p.readers)))]
  drawChart('chart-lag', seriesOf('lag', roles), now)
  drawChart('chart-lag-seconds', seriesOf('lag_seconds', roles), now)
  const events = { name: 'events/s (pipeline)', colour: '#d4a72c',
    values: page.points.filter((p) => p.events !== null).map((p) => [p.at, p.events]) }
  drawChart('chart-throughput', [...seriesOf('in', roles, { dashed: true, suffix: 'in' }),
    ...seriesOf('out', roles, { suffix: 'out' }), events], now)
  const legend = document.getElementById('legend')
  const items = roles.map((role) => [role, colourOf(role)])
  items.push([events.name, events.colour])
  legend.replaceChildren(...items.map(([name, colour]) => {
    const item = el('span', {}, name)
    item.style.setProperty('--c', colour)
    return item
  }))
}

// --- the loop -------------------------------------------------------------------------------------
function showErrors (errors) {
  const box = document.getElementById('errors')
  const lines = Object.entries(errors).map(([source, message]) => `${source}: ${message}`)
  box.hidden = lines.length === 0
  box.textContent = lines.join('\n')
}

async function refresh () {
  try {
    const state = await getJson('/api/state')
    if (state.at === undefined) return // the first sample is not taken yet
    page.interval = Math.max(500, (state.interval ?? 2) * 1000)
    const since = page.points.length ? page.points[page.points.length - 1].at : 0
    const history = await getJson(`/api/history?since=${since}`)
    page.points.push(...history.points)
    while (page.points.length && state.at - page.points[0].at > SPAN) page.points.shift()
    showErrors(state.errors)
    drawLag(state.lag)
    annotateGraph(state)
    drawStages(state)
    drawFreshness(state)
    drawDeadLetters(state.dead_letters)
    drawCharts(state.at)
    page.updates += 1
    document.body.setAttribute('data-updates', String(page.updates))
    document.body.setAttribute('data-state-at', String(state.at))
    document.getElementById('updated').textContent = `updated ${new Date(state.at * 1000).toLocaleTimeString()}`
  } catch (error) {
    showErrors({ page: `${error}` })
  } finally {
    setTimeout(refresh, page.interval)
  }
}

async function start () {
  try {
    page.topology = await getJson('/api/topology')
  } catch (error) {
    showErrors({ page: `${error}` })
    setTimeout(start, 2000)
    return
  }
  document.getElementById('app-id').textContent = page.topology.app_id
  drawGraph()
  refresh()
}

document.addEventListener('DOMContentLoaded', start)
