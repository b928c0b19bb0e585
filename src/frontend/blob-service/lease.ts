// Leases on blobs and containers (docs/blob-schema.md, "Leases"): the effective state at a time
// on the injected clock, the check a read or write makes against it, and Azure's Lease Blob /
// Lease Container transitions (acquire, renew, change, release, break). Pure.
//
// Invariants: only 'leased' and 'breaking' leases lock (a fixed lease past expiresMs is
// 'expired', a breaking lease past breakMs is 'broken'); lease ids compare ignoring case (GUIDs);
// a transition either returns the new stored lease or throws Azure's error, changing nothing.
// Fault model: none (pure); times come from the Clock.

import { randomUUID } from 'node:crypto';
import { FrontendError, type FrontendErrorCode } from '../errors.ts';
import type { LeaseId, LeaseProperties, LeaseState } from '../model.ts';
import type { LeaseAction } from '../operation.ts';
import type { LeaseRecord } from './records.ts';

export type LeaseTarget = 'blob' | 'container';

export function effectiveState(lease: LeaseRecord | null, nowMs: number): LeaseState {
  if (lease === null) return 'available';
  switch (lease.state) {
    case 'leased': return lease.durationSeconds !== null && (lease.expiresMs ?? 0) <= nowMs ? 'expired' : 'leased';
    case 'breaking': return (lease.breakMs ?? 0) <= nowMs ? 'broken' : 'breaking';
    case 'broken': return 'broken';
  }
}

export function leaseProperties(lease: LeaseRecord | null, nowMs: number): LeaseProperties {
  const state = effectiveState(lease, nowMs);
  const locked = state === 'leased' || state === 'breaking';
  if (state !== 'leased' || lease === null) return { status: locked ? 'locked' : 'unlocked', state };
  return { status: 'locked', state, duration: lease.durationSeconds === null ? 'infinite' : 'fixed' };
}

function sameId(left: string, right: string): boolean {
  return left.toLowerCase() === right.toLowerCase();
}

function fail(code: FrontendErrorCode, message: string): FrontendError {
  return new FrontendError(code, message);
}

/** A read or write that names (or omits) a lease id, against the current lease. */
export function checkLeaseAccess(lease: LeaseRecord | null, nowMs: number, leaseId: LeaseId | undefined, options: { readonly write: boolean; readonly target: LeaseTarget }): void {
  const state = effectiveState(lease, nowMs);
  const mismatch: FrontendErrorCode = options.target === 'blob' ? 'LeaseIdMismatchWithBlobOperation' : 'LeaseIdMismatchWithContainerOperation';
  const notPresent: FrontendErrorCode = options.target === 'blob' ? 'LeaseNotPresentWithBlobOperation' : 'LeaseNotPresentWithContainerOperation';
  if (state === 'leased' || state === 'breaking') {
    if (leaseId === undefined) {
      if (options.write) throw fail('LeaseIdMissing', `the ${options.target} has an active lease and no lease id was given`);
      return;
    }
    if (lease === null || !sameId(lease.id, leaseId)) throw fail(mismatch, `the lease id does not match the ${options.target}'s lease`);
    return;
  }
  if (leaseId === undefined) return;
  if (state === 'expired' && lease !== null && sameId(lease.id, leaseId)) throw fail('LeaseLost', `the ${options.target}'s lease has expired`);
  throw fail(notPresent, `the ${options.target} has no active lease`);
}

export interface LeaseTransition {
  readonly lease: LeaseRecord | null;
  readonly leaseId?: LeaseId;
  readonly leaseTimeSeconds?: number;
}

function granted(id: string, durationSeconds: number, nowMs: number): LeaseRecord {
  if (durationSeconds === -1) return { state: 'leased', id, durationSeconds: null };
  return { state: 'leased', id, durationSeconds, expiresMs: nowMs + durationSeconds * 1000 };
}

/** Azure's lease state machine: the stored lease after `action`, or Azure's error. */
export function applyLeaseAction(lease: LeaseRecord | null, nowMs: number, action: LeaseAction): LeaseTransition {
  const state = effectiveState(lease, nowMs);
  const current = lease?.id ?? '';
  switch (action.action) {
    case 'acquire': {
      if (state === 'breaking') throw fail('LeaseIsBreakingAndCannotBeAcquired', 'the lease is breaking');
      if (state === 'leased' && (action.proposedLeaseId === undefined || !sameId(current, action.proposedLeaseId))) throw fail('LeaseAlreadyPresent', 'there is already a lease');
      const id = action.proposedLeaseId ?? (randomUUID() as LeaseId);
      return { lease: granted(id, action.durationSeconds, nowMs), leaseId: id };
    }
    case 'renew': {
      if (state === 'available') throw fail('LeaseNotPresentWithLeaseOperation', 'there is no lease to renew');
      if (!sameId(current, action.leaseId)) throw fail('LeaseIdMismatchWithLeaseOperation', 'the lease id does not match');
      if (state === 'breaking' || state === 'broken') throw fail('LeaseIsBrokenAndCannotBeRenewed', 'the lease was broken');
      return { lease: granted(current, lease?.durationSeconds ?? -1, nowMs), leaseId: action.leaseId };
    }
    case 'change': return changeLease(lease, state, action.leaseId, action.proposedLeaseId);
    case 'release': {
      if (state === 'available') throw fail('LeaseNotPresentWithLeaseOperation', 'there is no lease to release');
      if (!sameId(current, action.leaseId)) throw fail('LeaseIdMismatchWithLeaseOperation', 'the lease id does not match');
      return { lease: null };
    }
    case 'break': return breakLease(lease, state, nowMs, action.breakPeriodSeconds);
  }
}

function changeLease(lease: LeaseRecord | null, state: LeaseState, leaseId: LeaseId, proposed: LeaseId): LeaseTransition {
  if (state === 'available' || state === 'expired' || state === 'broken' || lease === null) throw fail('LeaseNotPresentWithLeaseOperation', 'there is no lease to change');
  const matches = sameId(lease.id, leaseId) || sameId(lease.id, proposed);
  if (!matches) throw fail('LeaseIdMismatchWithLeaseOperation', 'the lease id does not match');
  if (state === 'breaking') throw fail('LeaseIsBreakingAndCannotBeChanged', 'the lease is breaking');
  return { lease: { ...lease, id: proposed }, leaseId: proposed };
}

function breakLease(lease: LeaseRecord | null, state: LeaseState, nowMs: number, periodSeconds: number | undefined): LeaseTransition {
  if (state === 'available' || lease === null) throw fail('LeaseNotPresentWithLeaseOperation', 'there is no lease to break');
  if (state === 'broken' || state === 'expired') return { lease: { state: 'broken', id: lease.id, durationSeconds: lease.durationSeconds }, leaseTimeSeconds: 0 };
  const remainingMs = state === 'breaking'
    ? Math.max(0, (lease.breakMs ?? nowMs) - nowMs)
    : lease.durationSeconds === null ? Number.POSITIVE_INFINITY : Math.max(0, (lease.expiresMs ?? nowMs) - nowMs);
  const askedMs = periodSeconds === undefined ? (lease.durationSeconds === null ? 0 : remainingMs) : periodSeconds * 1000;
  const breakMs = Math.min(askedMs, remainingMs);
  if (breakMs <= 0) return { lease: { state: 'broken', id: lease.id, durationSeconds: lease.durationSeconds }, leaseTimeSeconds: 0 };
  return { lease: { state: 'breaking', id: lease.id, durationSeconds: lease.durationSeconds, breakMs: nowMs + breakMs }, leaseTimeSeconds: Math.ceil(breakMs / 1000) };
}
