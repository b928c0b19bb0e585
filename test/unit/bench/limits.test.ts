// The machine limits' loop bounds: the large record's fsync'd append (the upload's reference) is
// measured over at least largeAppendBytesMin and largeAppendDurationMsMin, whatever the profile;
// the small records keep the profile's own bounds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { fasterAppend, fsyncAppendBounds, largeAppendBytesMin, largeAppendDurationMsMin } from '../../../bench/blob/limits.ts';
import { measureRawDurableAppend } from '../../../bench/lib/raw-limit.ts';
import { blobProfiles } from '../../../bench/blob/profiles.ts';

const MiB = 1024 * 1024;

describe('fsyncAppendBounds', () => {
  it('gives the quick profile 8 MiB limit 128 appends (1 GiB), not the 32 its 256 MiB allowed', () => {
    const quick = blobProfiles.quick;
    const bounds = fsyncAppendBounds(quick.bigBlockBytes, { durationMs: quick.durationMs, operationsMax: quick.operationsMax, bytesMax: quick.workloadBytesMax });
    assert.equal(bounds.operationsMax, largeAppendBytesMin / (8 * MiB));
    assert.equal(bounds.durationMs, largeAppendDurationMsMin);
  });

  it('keeps the bounds of a small record and a profile already above the minimum', () => {
    assert.deepEqual(fsyncAppendBounds(4096, { durationMs: 1_000, operationsMax: 5_000, bytesMax: 256 * MiB }), { durationMs: 1_000, operationsMax: 5_000 });
    assert.deepEqual(fsyncAppendBounds(8 * MiB, { durationMs: 9_000, operationsMax: 30_000, bytesMax: 2048 * MiB }), { durationMs: 9_000, operationsMax: 256 });
  });
});

describe('the durable-append limit for large records', () => {
  it('appends through O_DIRECT | O_DSYNC from aligned memory, and refuses a record that is not whole pages', async () => {
    const result = await measureRawDurableAppend({ directory: tmpdir(), recordBytes: MiB, durationMs: 10_000, operationsMax: 8, method: 'direct' });
    assert.equal(result.operations, 8);
    assert.equal(result.bytes, 8 * MiB);
    console.log(`O_DIRECT 1 MiB appends: ${result.mibPerSecond.toFixed(0)} MiB/s, p50 ${result.latency.p50Ms.toFixed(2)} ms`);
    await assert.rejects(measureRawDurableAppend({ directory: tmpdir(), recordBytes: MiB + 512, durationMs: 1_000, operationsMax: 1, method: 'direct' }), /multiple of 4096/);
  });

  it('takes the faster way as the limit and keeps the slower beside it', async () => {
    const fast = await measureRawDurableAppend({ directory: tmpdir(), recordBytes: MiB, durationMs: 10_000, operationsMax: 2 });
    const slow = { ...fast, mibPerSecond: fast.mibPerSecond / 2 };
    const limit = fasterAppend(MiB, { method: 'fdatasync', result: slow }, { method: 'direct', result: fast });
    assert.equal(limit.method, 'direct');
    assert.equal(limit.result, fast);
    assert.deepEqual(limit.slower, { method: 'fdatasync', result: slow });
    assert.equal(fasterAppend(MiB, { method: 'fdatasync', result: fast }, { method: 'direct', result: slow }).method, 'fdatasync');
  });
});
