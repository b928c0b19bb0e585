// The failpoint registry (src/util/failpoints.ts): off unless enabled, hit counters counted either
// way, skip and count honoured, the four actions, the KURA_FAILPOINTS syntax (and its errors),
// and "failpoints hit / total".
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isStorageError } from '../../src/util/errors.ts';
import {
  armFailpointsAfterReady, disableFailpoint, enableFailpoint, failpoint, failpointFirings, failpointHits, failpointNames, failpointsHit, failpointsTotal, parseFailpointSpec, resetFailpoints,
  setFailpointHost,
} from '../../src/util/failpoints.ts';
import type { FailpointName } from '../../src/util/failpoints.ts';

const name: FailpointName = 'partition.commit.after-log-append';

describe('failpoints', () => {
  afterEach(() => resetFailpoints());

  it('counts hits while off and does nothing', async () => {
    resetFailpoints();
    await failpoint(name);
    await failpoint(name);
    assert.equal(failpointHits().get(name), 2);
    assert.equal(failpointFirings().get(name), 0);
    assert.equal(failpointsHit(), 1);
    assert.equal(failpointsTotal(), failpointNames.length);
  });

  it('fires eio after `skip` hits, `count` times, then disarms itself', async () => {
    enableFailpoint(name, { action: { kind: 'eio' }, skip: 1, count: 2 });
    await failpoint(name);
    for (let i = 0; i < 2; i++) await assert.rejects(failpoint(name), (error: unknown) => isStorageError(error, 'io.eio'));
    await failpoint(name);
    assert.equal(failpointHits().get(name), 4);
    assert.equal(failpointFirings().get(name), 2);
  });

  it('crash and sleep go to the host; disable stops them', async () => {
    const seen: string[] = [];
    const previous = setFailpointHost({
      crash: (hit, exitCode) => {
        seen.push(`crash ${hit} ${exitCode}`);
        return new Promise<never>(() => undefined);
      },
      sleep: (ms) => {
        seen.push(`sleep ${ms}`);
        return Promise.resolve();
      },
    });
    try {
      enableFailpoint('metastore.commit.after-fsync', { action: { kind: 'sleep', ms: 250 } });
      await failpoint('metastore.commit.after-fsync');
      enableFailpoint(name, { action: { kind: 'exit', code: 3 }, count: 1 });
      const crashed = failpoint(name);
      let settled = false;
      crashed.then(() => { settled = true; }, () => { settled = true; });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(settled, false, 'a crashed failpoint never returns');
      disableFailpoint('metastore.commit.after-fsync');
      await failpoint('metastore.commit.after-fsync');
      assert.deepEqual(seen, ['sleep 250', `crash ${name} 3`]);
    } finally {
      setFailpointHost(previous);
    }
  });

  it('parses KURA_FAILPOINTS and rejects what it does not understand', () => {
    const parsed = parseFailpointSpec('metastore.commit.before-fsync=crash, partition.commit.after-log-append=sleep(200)*1+3,stream-client.append.after-seal=exit(7),rereplication.copy.after-copy=eio');
    assert.deepEqual(parsed.map((item) => [item.name, item.arming]), [
      ['metastore.commit.before-fsync', { action: { kind: 'crash' } }],
      ['partition.commit.after-log-append', { action: { kind: 'sleep', ms: 200 }, count: 1, skip: 3 }],
      ['stream-client.append.after-seal', { action: { kind: 'exit', code: 7 } }],
      ['rereplication.copy.after-copy', { action: { kind: 'eio' } }],
    ]);
    for (const bad of ['no.such.point=crash', 'metastore.commit.before-fsync=explode', 'metastore.commit.before-fsync', 'metastore.commit.before-fsync=sleep(x)']) {
      assert.throws(() => parseFailpointSpec(bad), (error: unknown) => isStorageError(error, 'config.invalid'), bad);
    }
  });

  it('arms KURA_FAILPOINTS_AFTER_READY only when the process says it is ready', async () => {
    process.env['KURA_FAILPOINTS_AFTER_READY'] = `${name}=eio*1+1`;
    try {
      await failpoint(name);
      await failpoint(name);
      assert.equal(failpointFirings().get(name), 0, 'not armed before ready');
      armFailpointsAfterReady();
      await failpoint(name);
      await assert.rejects(failpoint(name), (error: unknown) => isStorageError(error, 'io.eio'));
      await failpoint(name);
      assert.deepEqual([failpointHits().get(name), failpointFirings().get(name)], [5, 1]);
    } finally {
      delete process.env['KURA_FAILPOINTS_AFTER_READY'];
    }
  });
});
