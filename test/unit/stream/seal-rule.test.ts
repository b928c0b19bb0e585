// The seal and reconciliation rules of src/stream/seal-rule.ts, case by case
// (docs/stream-protocol.md, "Seal", "Damaged replicas", "Reconciliation").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { replicaVerdict, sealDecision } from '../../../src/stream/seal-rule.ts';
import type { RecordedState, ReplicaAnswer } from '../../../src/stream/seal-rule.ts';

const undamaged = (nodeId: string, length: number): { nodeId: string; length: number; damaged: boolean } => ({ nodeId, length, damaged: false });
const damaged = (nodeId: string, length: number): { nodeId: string; length: number; damaged: boolean } => ({ nodeId, length, damaged: true });

describe('sealDecision', () => {
  it('takes the smallest undamaged length (the old rule when nothing is damaged)', () => {
    assert.deepEqual(sealDecision({ answers: [undamaged('a', 300), undamaged('b', 200), undamaged('c', 250)], silentAliveNodeIds: [] }), {
      kind: 'seal', length: 200, overDamage: false, badNodeIds: [],
    });
  });

  it('leaves damaged replicas out of the minimum and marks them bad', (t) => {
    const decision = sealDecision({ answers: [undamaged('a', 4096), damaged('b', 1000), undamaged('c', 4096)], silentAliveNodeIds: ['d'] });
    assert.deepEqual(decision, { kind: 'seal', length: 4096, overDamage: false, badNodeIds: ['b'] });
    t.diagnostic('damaged replica at 1000 of 4096: the old rule would have cut 3096 acknowledged bytes off every copy; sealed at 4096');
  });

  it('a damaged replica longer than the undamaged ones does not raise the length', () => {
    assert.deepEqual(sealDecision({ answers: [undamaged('a', 100), damaged('b', 900)], silentAliveNodeIds: [] }), {
      kind: 'seal', length: 100, overDamage: false, badNodeIds: ['b'],
    });
  });

  it('with every answer damaged, waits for a silent replica on an alive node', () => {
    const decision = sealDecision({ answers: [damaged('a', 10), damaged('b', 20)], silentAliveNodeIds: ['c'] });
    assert.equal(decision.kind, 'wait');
  });

  it('with every answer damaged and no one else to wait for, seals at the largest length and flags it', () => {
    assert.deepEqual(sealDecision({ answers: [damaged('a', 3000), damaged('b', 2000), damaged('c', 3000)], silentAliveNodeIds: [] }), {
      kind: 'seal', length: 3000, overDamage: true, badNodeIds: ['b'],
    });
  });
});

describe('replicaVerdict', () => {
  const sealedAt = (sealedLength: number, overDamage = false): RecordedState => ({ kind: 'sealed', sealedLength, overDamage });
  const open = (length: number, isDamaged = false): ReplicaAnswer => ({ length, state: { kind: 'open' }, damaged: isDamaged });
  const sealed = (length: number): ReplicaAnswer => ({ length, state: { kind: 'sealed', sealedLength: length }, damaged: false });

  it('follows the reconciliation table', (t) => {
    const cases: Array<[string, RecordedState, ReplicaAnswer | null, ReturnType<typeof replicaVerdict>]> = [
      ['missed seal, longer', sealedAt(100), open(150), { kind: 'seal', length: 100 }],
      ['missed seal, same length', sealedAt(100), open(100), { kind: 'seal', length: 100 }],
      ['already sealed', sealedAt(100), sealed(100), { kind: 'ok' }],
      ['sealed elsewhere', sealedAt(100), sealed(90), { kind: 'bad', why: 'sealed_elsewhere' }],
      ['short', sealedAt(100), open(99), { kind: 'bad', why: 'short' }],
      ['missing', sealedAt(100), null, { kind: 'bad', why: 'missing' }],
      ['damaged', sealedAt(100), open(150, true), { kind: 'bad', why: 'damaged' }],
      ['damaged, at a seal over damage', sealedAt(100, true), open(100, true), { kind: 'seal', length: 100 }],
      ['longer than a seal over damage', sealedAt(100, true), open(120), { kind: 'bad', why: 'longer_than_seal_over_damage' }],
      ['open and healthy', { kind: 'open' }, open(10), { kind: 'ok' }],
      ['open but damaged', { kind: 'open' }, open(10, true), { kind: 'seal_extent' }],
      ['open but missing', { kind: 'open' }, null, { kind: 'seal_extent' }],
    ];
    for (const [name, recorded, replica, expected] of cases) assert.deepEqual(replicaVerdict(recorded, replica), expected, name);
    t.diagnostic(`${cases.length} reconciliation cases`);
  });
});
