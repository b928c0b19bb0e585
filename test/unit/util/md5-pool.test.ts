// Md5Pool (src/util/md5-pool.ts): MD5 on worker threads equals node:crypto's on the main thread,
// whatever the interleaving of sessions across workers, chunk sizes and updates in flight; a
// dropped session leaves the pool working; idle workers never keep the process alive (this file
// would not exit otherwise).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Md5Pool } from '../../../src/util/md5-pool.ts';
import { SeededRandom } from '../../../src/util/random.ts';

test('sessions interleaved over two workers hash exactly what node:crypto hashes', async (t) => {
  const pool = new Md5Pool(2);
  const random = new SeededRandom(20261122);
  const bodies = Array.from({ length: 12 }, (_, i) => randomBytes(i === 0 ? 0 : 1 + random.int(3 * 1024 * 1024)));
  let updates = 0;
  const digests = await Promise.all(bodies.map(async (body) => {
    const session = pool.session();
    const sent: Promise<void>[] = [];
    for (let at = 0; at < body.length;) {
      const end = Math.min(body.length, at + 1 + random.int(512 * 1024));
      // Several updates in flight at once: the worker still hashes them in the order sent.
      sent.push(session.update(body.subarray(at, end)));
      updates += 1;
      at = end;
      if (sent.length === 4) await Promise.all(sent.splice(0));
    }
    await Promise.all(sent);
    return session.digest();
  }));
  for (const [i, body] of bodies.entries()) assert.deepEqual(digests[i], createHash('md5').update(body).digest(), `body ${i} (${body.length} bytes)`);
  t.diagnostic(`${bodies.length} bodies (${(bodies.reduce((sum, body) => sum + body.length, 0) / 1048576).toFixed(1)} MiB) in ${updates} updates over 2 workers: every digest equals node:crypto's`);
});

test('a dropped session frees its state; later sessions on the same worker are unaffected', async () => {
  const pool = new Md5Pool(1);
  const dropped = pool.session();
  const pending = dropped.update(Buffer.from('abandoned body'));
  dropped.drop();
  dropped.drop(); // idempotent
  await pending; // an update sent before the drop is still answered
  const next = pool.session();
  await next.update(Buffer.from('hello'));
  assert.equal((await next.digest()).toString('hex'), createHash('md5').update('hello').digest('hex'));
});
