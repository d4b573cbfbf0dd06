// Open a page in headless Chromium and report its network traffic (tests/integration/test_posthog_js_browser.py).
//
//   node browser.mjs <page-url> [max-seconds]
//
// Uses the system Chromium (CHROMIUM, default /usr/bin/chromium) through playwright-core; never
// downloads a browser. Requests to hosts other than 127.0.0.1 are aborted (and reported), so the
// page can only talk to the test's own servers. Prints one JSON object per line on stdout:
//   {"kind": "request", "id", "method", "url", "headers", "postDataBytes", "postDataHead" (first 4 bytes, hex)}
//   {"kind": "response", "id", "status", "url", "headers"}
//   {"kind": "failed", "id", "url", "error"}         (a request that got no answer)
//   {"kind": "blocked", "url"}                        (a request to the outside world, aborted)
//   {"kind": "console", "type", "text"} · {"kind": "pageerror", "text"} · {"kind": "loaded"}
// and keeps the page open until its stdin closes or max-seconds pass, then closes the browser.
import { chromium } from 'playwright-core'

const [url, maxSecondsArg] = process.argv.slice(2)
if (!url) {
  console.error('usage: node browser.mjs <page-url> [max-seconds]')
  process.exit(2)
}
const maxSeconds = Number(maxSecondsArg ?? '45')
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
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--disable-domain-reliability',
    '--no-pings',
  ],
})
const hardStop = setTimeout(() => finish(0), maxSeconds * 1000)
let finishing = false
async function finish(code) {
  if (finishing) return
  finishing = true
  clearTimeout(hardStop)
  try {
    await browser.close()
  } finally {
    process.exit(code)
  }
}
process.stdin.on('end', () => finish(0))
process.stdin.resume()
process.on('SIGTERM', () => finish(0))

try {
  const context = await browser.newContext()
  await context.route((u) => !isLocal(u.toString()), (route) => {
    print({ kind: 'blocked', url: route.request().url() })
    return route.abort('blockedbyclient')
  })
  const page = await context.newPage()
  const ids = new Map()
  let next = 0
  const idOf = (request) => {
    if (!ids.has(request)) ids.set(request, next++)
    return ids.get(request)
  }
  page.on('request', (request) => {
    const body = request.postDataBuffer()
    print({
      kind: 'request', id: idOf(request), method: request.method(), url: request.url(),
      headers: request.headers(), postDataBytes: body ? body.length : 0,
      postDataHead: body ? body.subarray(0, 4).toString('hex') : null,
    })
  })
  page.on('response', (response) => {
    print({
      kind: 'response', id: idOf(response.request()), status: response.status(), url: response.url(),
      headers: response.headers(),
    })
  })
  page.on('requestfailed', (request) => {
    print({ kind: 'failed', id: idOf(request), url: request.url(), error: request.failure()?.errorText ?? null })
  })
  page.on('console', (message) => print({ kind: 'console', type: message.type(), text: message.text() }))
  page.on('pageerror', (error) => print({ kind: 'pageerror', text: String(error?.stack ?? error) }))
  await page.goto(url, { waitUntil: 'load', timeout: 20000 })
  print({ kind: 'loaded' })
} catch (error) {
  console.error(String(error?.stack ?? error))
  await finish(1)
}
