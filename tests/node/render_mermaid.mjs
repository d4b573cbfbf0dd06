// Render a Mermaid diagram (stdin) with the real mermaid library in headless Chromium
// (tests/unit/test_topology_render.py). Prints {"svg": "..."} or {"error": "..."} on stdout.
// Uses the system Chromium through playwright-core; the page loads nothing from the network.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { chromium } from 'playwright-core'

const require = createRequire(import.meta.url)
const mermaidJs = readFileSync(require.resolve('mermaid/dist/mermaid.min.js'), 'utf8')
const source = readFileSync(0, 'utf8')

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 30000,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
})
try {
  const page = await browser.newPage()
  await page.route('**/*', (route) => route.abort())
  await page.setContent('<!doctype html><html><body></body></html>')
  await page.addScriptTag({ content: mermaidJs })
  const result = await page.evaluate(async (text) => {
    try {
      window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' })
      const { svg } = await window.mermaid.render('graph', text)
      return { svg }
    } catch (error) {
      return { error: String(error && error.message ? error.message : error) }
    }
  }, source)
  process.stdout.write(JSON.stringify(result) + '\n')
} finally {
  await browser.close()
}
