// AdminServer on 127.0.0.1 (a real socket, so it lives with the integration tests): the three
// endpoints, readiness evaluated per request (503 → 200), HEAD without a body, 404 and 405, an
// oversized request head refused before it is buffered, and bad --admin addresses refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { pino } from 'pino';
import { Counter, Registry } from 'prom-client';
import { adminHeaderBytesMax } from '../../src/constants.ts';
import { AdminServer, parseListenAddress } from '../../src/observability/admin-server.ts';
import { isStorageError } from '../../src/util/errors.ts';

function call(base: string, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method: options.method ?? 'GET', headers: options.headers ?? {}, timeout: 5000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => { body += chunk.toString('utf8'); });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body, type: String(response.headers['content-type'] ?? '') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('AdminServer', () => {
  it('serves /metrics, /healthz and /readyz, and refuses everything else', async (t) => {
    const registry = new Registry();
    new Counter({ name: 'kura_test_total', help: 'test', registers: [registry] }).inc(3);
    let ready = false;
    const admin = await AdminServer.start({ address: '127.0.0.1:0', registry, logger: pino({ level: 'silent' }), readiness: () => ({ ready, reason: ready ? 'serving' : 'opening' }) });
    const base = `http://${admin.address}`;
    try {
      const metrics = await call(base, '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^kura_test_total 3$/m);
      assert.match(metrics.type, /^text\/plain/);
      assert.equal((await call(base, '/healthz')).status, 200);
      const notReady = await call(base, '/readyz');
      assert.deepEqual([notReady.status, JSON.parse(notReady.body)], [503, { ready: false, reason: 'opening' }]);
      ready = true;
      assert.equal((await call(base, '/readyz?verbose=1')).status, 200);
      const head = await call(base, '/metrics', { method: 'HEAD' });
      assert.deepEqual([head.status, head.body], [200, '']);
      assert.equal((await call(base, '/nope')).status, 404);
      assert.equal((await call(base, '/metrics', { method: 'POST' })).status, 405);
      const huge = await call(base, '/metrics', { headers: { 'x-filler': 'a'.repeat(adminHeaderBytesMax * 2) } }).catch(() => ({ status: -1 }));
      assert.ok(huge.status === 431 || huge.status === -1, `oversized head refused (${huge.status})`);
      t.diagnostic(`metrics 200, healthz 200, readyz 503 → 200, HEAD 200 without body, 404, 405, oversized head ${huge.status === -1 ? 'reset' : huge.status}`);
    } finally {
      await admin.close();
    }
  });

  it('refuses an --admin address that is not host:port', () => {
    for (const bad of ['9100', ':9100', 'localhost:', 'localhost:99999', 'localhost:x']) {
      assert.throws(() => parseListenAddress(bad), (error: unknown) => isStorageError(error, 'config.invalid'), bad);
    }
    assert.deepEqual(parseListenAddress('[::1]:9100'), { host: '::1', port: 9100 });
    assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  });
});
