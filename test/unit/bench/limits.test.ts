// The machine limits' loop bounds: the large record's fsync'd append (the upload's reference) is
// measured over at least largeAppendBytesMin and largeAppendDurationMsMin, whatever the profile;
// the small records keep the profile's own bounds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fsyncAppendBounds, largeAppendBytesMin, largeAppendDurationMsMin } from '../../../bench/blob/limits.ts';
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
