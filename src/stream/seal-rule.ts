// The stream manager's two pure decisions about replica lengths (docs/stream-protocol.md, "Seal",
// "Damaged replicas" and "Reconciliation"):
//
//   sealDecision   — at which length an open extent is sealed, from its replicas' extent.info
//                    answers (which ones are damaged) and which silent replicas may still answer;
//   replicaVerdict — what to do with one replica when the map's record and the node's answer
//                    are compared (on registration, and by the repair pass's audit).
//
// Invariants (each is why the rule is safe for P1):
// - an undamaged replica holds every acknowledged append (an ack needs every replica durable,
//   and its recovery proved completeness), so the smallest undamaged length is ≥ the commit
//   length; damaged replicas are never part of that minimum;
// - with no undamaged answer, the seal never goes below what any answering replica holds (the
//   largest length), and never happens while a replica on an alive node has not answered;
// - a replica is never sealed (truncated) to a length it does not hold, never trusted when it
//   is damaged (except, for lack of anything better, at the length of a seal over damage), and a
//   replica longer than a seal over damage is never truncated (it is evidence).
//
// Fault model: none of its own; answers are already parsed. Callers treat a missing answer
// (extent.not_found) as `null` and any other failure as "unknown" (they do not call this).
import { assert } from '../util/assert.ts';

export interface ReplicaLengthAnswer {
  readonly nodeId: string;
  readonly length: number;
  readonly damaged: boolean;
}

export type SealDecision =
  | {
    readonly kind: 'seal';
    readonly length: number;
    /** Every answering replica was damaged: the extent is flagged sealedOverDamage. */
    readonly overDamage: boolean;
    /** Answering replicas that must be replaced (damaged, or too short for the seal). */
    readonly badNodeIds: readonly string[];
  }
  | { readonly kind: 'wait'; readonly reason: string };

/**
 * The seal length of an open extent. `silentAliveNodeIds`: replicas that did not answer but are
 * on nodes the manager considers alive (they may answer a retry).
 */
export function sealDecision(input: { readonly answers: readonly ReplicaLengthAnswer[]; readonly silentAliveNodeIds: readonly string[] }): SealDecision {
  const { answers } = input;
  assert(answers.length > 0, 'sealDecision needs at least one answer');
  const undamaged = answers.filter((answer) => !answer.damaged);
  if (undamaged.length > 0) {
    const length = Math.min(...undamaged.map((answer) => answer.length));
    return { kind: 'seal', length, overDamage: false, badNodeIds: answers.filter((answer) => answer.damaged).map((answer) => answer.nodeId) };
  }
  if (input.silentAliveNodeIds.length > 0) {
    return { kind: 'wait', reason: `every answering replica is damaged; waiting for ${input.silentAliveNodeIds.join(', ')}` };
  }
  const length = Math.max(...answers.map((answer) => answer.length));
  return { kind: 'seal', length, overDamage: true, badNodeIds: answers.filter((answer) => answer.length < length).map((answer) => answer.nodeId) };
}

/** What the map records about an extent. */
export type RecordedState =
  | { readonly kind: 'open' }
  | { readonly kind: 'sealed'; readonly sealedLength: number; readonly overDamage: boolean };

/** What a node answered for its replica (extent.info), or null if it does not hold it. */
export interface ReplicaAnswer {
  readonly length: number;
  readonly state: { readonly kind: 'open' } | { readonly kind: 'sealed'; readonly sealedLength: number };
  readonly damaged: boolean;
}

export type ReplicaVerdict =
  /** Nothing to do: sealed at the recorded length, or open and healthy. */
  | { readonly kind: 'ok' }
  /** Open (or longer) on the node: send extent.seal at the recorded length. */
  | { readonly kind: 'seal'; readonly length: number }
  /** Cannot serve the recorded extent: mark bad, repair replaces it. */
  | { readonly kind: 'bad'; readonly why: 'missing' | 'short' | 'damaged' | 'sealed_elsewhere' | 'longer_than_seal_over_damage' }
  /** The map says open but this replica lost data: the extent must be sealed first. */
  | { readonly kind: 'seal_extent' };

export function replicaVerdict(recorded: RecordedState, replica: ReplicaAnswer | null): ReplicaVerdict {
  if (recorded.kind === 'open') return replica === null || replica.damaged ? { kind: 'seal_extent' } : { kind: 'ok' };
  if (replica === null) return { kind: 'bad', why: 'missing' };
  const sealedLength = recorded.sealedLength;
  if (replica.damaged && !(recorded.overDamage && replica.length === sealedLength)) return { kind: 'bad', why: 'damaged' };
  if (replica.state.kind === 'sealed') return replica.state.sealedLength === sealedLength ? { kind: 'ok' } : { kind: 'bad', why: 'sealed_elsewhere' };
  if (replica.length < sealedLength) return { kind: 'bad', why: 'short' };
  if (replica.length > sealedLength && recorded.overDamage) return { kind: 'bad', why: 'longer_than_seal_over_damage' };
  return { kind: 'seal', length: sealedLength };
}
