// Drive the real posthog-node SDK against a Headwater gateway (tests/integration/test_js_sdks.py).
//
//   node send_node.mjs <host> <token> <count> [run-id]
//
// Sends <count> captures with explicit uuids (some with groups), then identify, alias and
// groupIdentify, and awaits shutdown(). The capture mode is posthog-node's own switch: the
// environment variable POSTHOG_CAPTURE_MODE (unset/"v0": gzipped POST /batch/, "v1": POST
// /i/v1/analytics/events). Prints one JSON object per line on stdout:
//   {"kind": "request", "path", "method", "status", "encoding", "contentType"}  every HTTP call
//   {"kind": "sent", "uuid", "event", "distinct_id", "properties"}            every event flushed
// and exits 1 if the SDK reported an error.
import { randomUUID } from 'node:crypto'
import { PostHog } from 'posthog-node'

const [host, token, countArg, runArg] = process.argv.slice(2)
if (!host || !token) {
  console.error('usage: node send_node.mjs <host> <token> <count> [run-id]')
  process.exit(2)
}
const count = Number(countArg ?? '10')
const run = runArg ?? randomUUID().slice(0, 8)
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const errors = []
const recordingFetch = async (url, options = {}) => {
  const response = await fetch(url, options)
  const headers = new Headers(options.headers ?? {})
  print({
    kind: 'request',
    path: new URL(url).pathname,
    method: options.method ?? 'GET',
    status: response.status,
    encoding: headers.get('content-encoding'),
    contentType: headers.get('content-type'),
  })
  return response
}

const client = new PostHog(token, {
  host,
  flushAt: 10,
  flushInterval: 200,
  fetch: recordingFetch,
  fetchRetryCount: 0,
  requestTimeout: 10000,
  featureFlagsPollingInterval: null,
})
client.on('error', (err) => {
  errors.push(String(err?.stack ?? err))
})
client.on('flush', (messages) => {
  for (const m of messages) {
    print({ kind: 'sent', uuid: m.uuid, event: m.event, distinct_id: m.distinct_id, properties: m.properties })
  }
})

for (let i = 0; i < count; i++) {
  client.capture({
    distinctId: `node-${run}-${i % 3}`,
    event: i % 2 ? 'node_event' : 'node_other_event',
    properties: { i, run, plan: 'pro', nested: { ok: true } },
    uuid: randomUUID(),
    ...(i % 4 === 0 ? { groups: { company: `acme-${run}` } } : {}),
  })
}
client.identify({ distinctId: `node-${run}-0`, properties: { email: `zero-${run}@example.com` } })
client.alias({ distinctId: `node-${run}-0`, alias: `alias-${run}` })
client.groupIdentify({ groupType: 'company', groupKey: `acme-${run}`, properties: { name: 'Acme' } })

await client.shutdown(15000)
if (errors.length) {
  console.error(errors.join('\n'))
  process.exit(1)
}
