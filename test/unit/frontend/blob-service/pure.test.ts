// The blob service's pure parts without a stamp: Azure's lease state machine over time, tag
// predicates, conditional headers, the committed block list codec and key order, the pending copy
// stall rule.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBlockIndex, decodeBlockListV1, encodeBlockIndex, encodeBlockListV1 } from '../../../../src/frontend/blob-service/block-list.ts';
import { checkConditions } from '../../../../src/frontend/blob-service/conditions.ts';
import { effectiveCopy, loadedBlob } from '../../../../src/frontend/blob-service/context.ts';
import { encodeBlob, type BlobRecord } from '../../../../src/frontend/blob-service/records.ts';
import { copyPendingStallMs } from '../../../../src/constants.ts';
import type { LiveRow } from '../../../../src/partition/partition.ts';
import { blobKey, blobPrefix, keySuccessor, nameAfter, snapshotKey, stagingKey, uncommittedKey } from '../../../../src/frontend/blob-service/keys.ts';
import { applyLeaseAction, checkLeaseAccess, effectiveState } from '../../../../src/frontend/blob-service/lease.ts';
import { evaluateTagPredicate, parseFindExpression, parseTagPredicate } from '../../../../src/frontend/blob-service/tag-query.ts';
import { isFrontendError } from '../../../../src/frontend/errors.ts';
import type { ETag, LeaseId } from '../../../../src/frontend/model.ts';
import { SeededRandom } from '../../../../src/util/random.ts';

const a = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa' as LeaseId;
const b = 'bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb' as LeaseId;

function code(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    if (isFrontendError(error)) return error.code;
    throw error;
  }
  return 'ok';
}

test('lease state machine: Azure\'s outcomes by state, expiry and break period on the clock', () => {
  const t0 = 1_000_000;
  const leased = applyLeaseAction(null, t0, { action: 'acquire', durationSeconds: 20, proposedLeaseId: a }).lease;
  assert.equal(effectiveState(leased, t0 + 19_999), 'leased');
  assert.equal(effectiveState(leased, t0 + 20_000), 'expired');
  assert.equal(code(() => applyLeaseAction(leased, t0, { action: 'acquire', durationSeconds: 15, proposedLeaseId: b })), 'LeaseAlreadyPresent');
  assert.equal(code(() => applyLeaseAction(leased, t0, { action: 'acquire', durationSeconds: 15, proposedLeaseId: a })), 'ok');
  assert.equal(code(() => applyLeaseAction(leased, t0 + 30_000, { action: 'acquire', durationSeconds: 15, proposedLeaseId: b })), 'ok', 'an expired lease can be taken');
  assert.equal(code(() => applyLeaseAction(null, t0, { action: 'renew', leaseId: a })), 'LeaseNotPresentWithLeaseOperation');
  const breaking = applyLeaseAction(leased, t0, { action: 'break', breakPeriodSeconds: 5 });
  assert.deepEqual([effectiveState(breaking.lease, t0 + 4_999), effectiveState(breaking.lease, t0 + 5_000), breaking.leaseTimeSeconds], ['breaking', 'broken', 5]);
  const shortened = applyLeaseAction(leased, t0 + 18_000, { action: 'break', breakPeriodSeconds: 60 });
  assert.equal(shortened.leaseTimeSeconds, 2, 'a break period never outlasts the lease');
  const infinite = applyLeaseAction(null, t0, { action: 'acquire', durationSeconds: -1, proposedLeaseId: a }).lease;
  assert.equal(effectiveState(applyLeaseAction(infinite, t0, { action: 'break' }).lease, t0), 'broken', 'an infinite lease breaks at once by default');
  assert.equal(code(() => checkLeaseAccess(leased, t0, undefined, { write: true, target: 'blob' })), 'LeaseIdMissing');
  assert.equal(code(() => checkLeaseAccess(leased, t0, undefined, { write: false, target: 'blob' })), 'ok');
  assert.equal(code(() => checkLeaseAccess(leased, t0, b, { write: false, target: 'container' })), 'LeaseIdMismatchWithContainerOperation');
  assert.equal(code(() => checkLeaseAccess(leased, t0, a.toUpperCase() as LeaseId, { write: true, target: 'blob' })), 'ok', 'lease ids compare ignoring case');
  assert.equal(code(() => checkLeaseAccess(leased, t0 + 20_000, a, { write: true, target: 'blob' })), 'LeaseLost');
  assert.equal(code(() => checkLeaseAccess(null, t0, a, { write: true, target: 'blob' })), 'LeaseNotPresentWithBlobOperation');
});

test('tag predicates: AND/OR/parentheses, operators, quoting, @container, refusals', () => {
  const tags = [{ key: 'project', value: 'kura' }, { key: 'n', value: '5' }, { key: 'it\'s', value: 'a"b' }];
  const yes = ['"project" = \'kura\'', 'project = \'kura\' AND "n" >= \'5\'', '"n" < \'3\' OR "project" <> \'x\'', '("n" > \'4\' AND ("project" = \'kura\'))', '"it\'s" = \'a"b\''];
  const no = ['"project" = \'other\'', '"n" > \'5\'', '"missing" = \'\'', '"n" <= \'4\' AND "project" = \'kura\''];
  for (const text of yes) assert.equal(evaluateTagPredicate(parseTagPredicate(text), tags), true, text);
  for (const text of no) assert.equal(evaluateTagPredicate(parseTagPredicate(text), tags), false, text);
  assert.equal(parseFindExpression('@container = \'c1\' AND "a" = \'b\'').container, 'c1');
  assert.equal(evaluateTagPredicate(parseTagPredicate('@container = \'c1\''), [], 'c2'), false);
  for (const bad of ['', '"a" =', '"a" = \'b', '"a" == \'b\'', '("a" = \'b\'', '"a" = \'b\' AND', '"a" ~ \'b\'']) {
    assert.equal(code(() => parseTagPredicate(bad, 'InvalidQueryParameterValue')), 'InvalidQueryParameterValue', bad);
  }
  assert.equal(code(() => parseTagPredicate(Array.from({ length: 70 }, () => '"a" = \'b\'').join(' AND '))), 'InvalidHeaderValue', 'term count bounded');
});

test('conditional headers: 412 for writes, 304 for reads, BlobAlreadyExists for If-None-Match: * writes', () => {
  const target = { etag: '0x1F', modifiedMs: Date.parse('2026-01-01T00:00:10.500Z'), tags: [] };
  const at = (iso: string): Date => new Date(iso);
  assert.equal(code(() => checkConditions({ ifMatch: { kind: 'list', etags: ['"0x1F"' as ETag] } }, target, { read: false })), 'ok');
  assert.equal(code(() => checkConditions({ ifMatch: { kind: 'list', etags: ['W/"0x1E"' as ETag] } }, target, { read: true })), 'ConditionNotMet');
  assert.equal(code(() => checkConditions({ ifNoneMatch: { kind: 'any' } }, target, { read: false, existsCode: 'BlobAlreadyExists' })), 'BlobAlreadyExists');
  assert.equal(code(() => checkConditions({ ifNoneMatch: { kind: 'list', etags: ['"0x1F"' as ETag] } }, target, { read: true })), 'ConditionNotMetRead');
  assert.equal(code(() => checkConditions({ ifModifiedSince: at('2026-01-01T00:00:10Z') }, target, { read: true })), 'ConditionNotMetRead', 'same second is not modified since');
  assert.equal(code(() => checkConditions({ ifModifiedSince: at('2026-01-01T00:00:09Z') }, target, { read: true })), 'ok');
  assert.equal(code(() => checkConditions({ ifUnmodifiedSince: at('2026-01-01T00:00:09Z') }, target, { read: false })), 'ConditionNotMet');
  assert.equal(code(() => checkConditions({ ifMatch: { kind: 'any' } }, null, { read: false })), 'ConditionNotMet');
  assert.equal(code(() => checkConditions({ ifNoneMatch: { kind: 'any' } }, null, { read: false })), 'ok');
});

test('committed block list codec round-trips and refuses damage; keys sort in listing order', () => {
  const random = new SeededRandom(7);
  for (let round = 0; round < 50; round++) {
    const blocks = Array.from({ length: random.int(20) }, () => {
      const refs = Array.from({ length: random.int(4) }, () => ({ extentId: random.int(1 << 20), offset: random.int(1 << 30), length: random.int(1 << 22) }));
      return { id: random.bytes(random.int(65)), size: refs.reduce((sum, ref) => sum + ref.length, 0), refs };
    });
    const refs = blocks.flatMap((block) => block.refs);
    const index = encodeBlockIndex(blocks);
    assert.deepEqual(decodeBlockIndex(index, refs), blocks);
    if (index.length > 4) assert.throws(() => decodeBlockIndex(index.subarray(0, index.length - 1), refs));
    if (refs.length > 0) {
      assert.throws(() => decodeBlockIndex(index, refs.slice(1)), 'a missing ref is corrupt');
      assert.throws(() => decodeBlockIndex(index, [...refs, { extentId: 1, offset: 0, length: 1 }]), 'a stray ref is corrupt');
      assert.throws(() => decodeBlockIndex(index, refs.map((ref, i) => (i === 0 ? { ...ref, length: ref.length + 1 } : ref))), 'refs that do not add up to the size are corrupt');
    }
    const v1 = encodeBlockListV1(blocks);
    assert.deepEqual(decodeBlockListV1(v1), blocks);
    if (v1.length > 4) assert.throws(() => decodeBlockListV1(v1.subarray(0, v1.length - 1)));
  }
  const prefix = blobPrefix('acct', 'cont', 'inc');
  const names = ['a', 'a/b', 'a0', 'ab', 'b', 'é'];
  const keys = names.map((name) => blobKey(prefix, name));
  const aux = [stagingKey(keys[0] ?? Buffer.alloc(0)), snapshotKey(keys[0] ?? Buffer.alloc(0), '2026-01-01T00:00:00.0000000Z'), uncommittedKey(keys[0] ?? Buffer.alloc(0), 'g1', Buffer.from([0xff, 0xff]))];
  const all = [...keys, ...aux].sort((left, right) => Buffer.compare(left, right));
  assert.deepEqual(all.map((key) => nameAfter(prefix, key)?.name), ['a', 'a', 'a', 'a', 'a/b', 'a0', 'ab', 'b', 'é'], 'every row of blob a sorts before the next name');
  assert.deepEqual(all.map((key) => nameAfter(prefix, key)?.own).slice(0, 4), [true, false, false, false]);
  assert.deepEqual(keySuccessor(Buffer.from([1, 0xff])), Buffer.from([2]));
  assert.equal(keySuccessor(Buffer.from([0xff])), null);
});

// A Lease Blob or Set Blob Tags rewrites a pending copy's row and keeps the copy going, so the row's
// time says nothing about the transfer: the stall rule reads the transfer's own beat.
test('a pending copy stalls by its transfer\'s beat, not the row\'s time; rows without a beat fall back to it', () => {
  const t0 = 5_000_000;
  const copy = { id: 'c1', status: 'pending' as const, source: 'http://example.com/x', progress: '1/2' };
  const record: BlobRecord = { type: 'BlockBlob', createdMs: t0, size: 0, headers: {}, metadata: [], tags: [], lease: null, copy, copyBeatMs: t0, blockList: null, append: null };
  const key = Buffer.from('k');
  const rowAt = (lastModifiedMs: number, at: BlobRecord): LiveRow => ({ kind: 'live', key, sequence: 1, etag: '0x1', lastModifiedMs, columns: encodeBlob(at) });
  const leasedLater = loadedBlob(rowAt(t0 + copyPendingStallMs, record), key);
  assert.equal(leasedLater.record.copyBeatMs, t0, 'the beat round-trips through the row');
  const statuses = [
    effectiveCopy(leasedLater, t0 + copyPendingStallMs)?.status,
    effectiveCopy(leasedLater, t0 + copyPendingStallMs + 1)?.status,
    effectiveCopy(loadedBlob(rowAt(t0 + copyPendingStallMs, { ...record, copyBeatMs: t0 + copyPendingStallMs }), key), t0 + copyPendingStallMs + 1)?.status,
  ];
  const olderVersion: BlobRecord = { type: 'BlockBlob', createdMs: t0, size: 0, headers: {}, metadata: [], tags: [], lease: null, copy, blockList: null, append: null };
  statuses.push(effectiveCopy(loadedBlob(rowAt(t0 + copyPendingStallMs, olderVersion), key), t0 + copyPendingStallMs + 1)?.status);
  assert.deepEqual(statuses, ['pending', 'failed', 'pending', 'pending'], 'stalled by the beat although the row was rewritten; a fresh beat; an older row: its time');
});
