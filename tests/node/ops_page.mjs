// Drive the ops page (headwater ops) in headless Chromium for tests/integration/test_ops_page.py.
//
//   node ops_page.mjs <page-url>
//
// Uses the system Chromium (CHROMIUM, default /usr/bin/chromium) through playwright-core. Requests
// to anywhere but 127.0.0.1 are aborted and reported: the page must work offline. Waits until the
// page has drawn its first state, prints {"kind": "ready"}, then answers commands, one JSON
// object a line on stdin:
//   {"cmd": "read"}                → {"kind": "page", ...what the page shows, read from its DOM}
//   {"cmd": "shot", "path": "..."} → {"kind": "shot", "path"} (a full-page PNG)
// Also prints {"kind": "blocked", "url"}, {"kind": "pageerror", "text"}, {"kind": "console", "type", "text"}
// as they happen. Closes the browser when stdin ends.
import { createInterface } from 'node:readline'
import { chromium } from 'playwright-core'

const [url] = process.argv.slice(2)
if (!url) {
  console.error('usage: node ops_page.mjs <page-url>')
  process.exit(2)
}
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const isLocal = (u) => {
  try {
    const { protocol, hostname } = new URL(u)
    return protocol === 'data:' || protocol === 'blob:' || hostname === '127.0.0.1'
  } catch {
    return false
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 30000,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-default-apps', '--no-pings'],
})
let closing = false
async function finish (code) {
  if (closing) return
  closing = true
  try { await browser.close() } finally { process.exit(code) }
}
process.on('SIGTERM', () => finish(0))

// What the page shows, from its DOM (the data attributes it renders beside the text).
function readPage () {
  const rows = (selector) => [...document.querySelectorAll(selector)]
  const numberOr = (v) => (v === undefined || v === '' ? null : Number(v))
  return {
    updates: Number(document.body.dataset.updates),
    stateAt: numberOr(document.body.dataset.stateAt),
    overall: document.getElementById('overall').dataset.status,
    errors: document.getElementById('errors').hidden ? '' : document.getElementById('errors').textContent,
    groups: rows('#lag tbody tr').map((tr) => ({
      role: tr.dataset.role, group: tr.dataset.group, status: tr.dataset.status, lag: Number(tr.dataset.lag),
      lag_seconds: Number(tr.dataset.lagSeconds), members: Number(tr.dataset.members),
      committed: numberOr(tr.dataset.committed), end: Number(tr.dataset.end),
      text: [...tr.cells].map((td) => td.textContent),
    })),
    stages: rows('#stages tbody tr').map((tr) => ({ stage: tr.dataset.stage, ok: Number(tr.dataset.ok),
      errors: Number(tr.dataset.errors), text: [...tr.cells].map((td) => td.textContent) })),
    sinks: rows('#freshness tbody tr').map((tr) => ({ sink: tr.dataset.sink, text: [...tr.cells].map((td) => td.textContent) })),
    nodes: rows('#graph g.node').map((g) => ({ id: g.dataset.id, status: g.dataset.status ?? null,
      ok: numberOr(g.dataset.ok), text: [...g.querySelectorAll('text')].map((t) => t.textContent) })),
    edges: rows('#graph path.edge').length,
    chartPoints: Object.fromEntries(rows('svg.chart').map((s) => [s.id, Number(s.dataset.points ?? 0)])),
    deadLetters: numberOr(document.getElementById('dlq-total').dataset.total),
  }
}

try {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } })
  await context.route((u) => !isLocal(u.toString()), (route) => {
    print({ kind: 'blocked', url: route.request().url() })
    return route.abort('blockedbyclient')
  })
  const page = await context.newPage()
  page.on('console', (message) => print({ kind: 'console', type: message.type(), text: message.text() }))
  page.on('pageerror', (error) => print({ kind: 'pageerror', text: String(error?.stack ?? error) }))
  await page.goto(url, { waitUntil: 'load', timeout: 20000 })
  await page.waitForFunction(() => Number(document.body.dataset.updates) > 0, null, { timeout: 60000 })
  print({ kind: 'ready' })
  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (!line.trim()) continue
    const command = JSON.parse(line)
    if (command.cmd === 'read') {
      print({ kind: 'page', ...(await page.evaluate(readPage)) })
    } else if (command.cmd === 'shot') {
      await page.screenshot({ path: command.path, fullPage: true })
      print({ kind: 'shot', path: command.path })
    } else {
      print({ kind: 'error', text: `unknown command ${line}` })
    }
  }
  await finish(0)
} catch (error) {
  console.error(String(error?.stack ?? error))
  await finish(1)
}
