// Azure's conditional headers evaluated against a resource as read (docs/blob-schema.md,
// "Conditions, ETags and atomicity"): If-Match, If-None-Match, If-Modified-Since,
// If-Unmodified-Since and x-ms-if-tags. The caller then writes under the partition's If-Match of
// the row it read, so this evaluation is atomic with the write. Pure.
//
// Invariants: ETags compare without quotes or W/ (the client echoes what it was given); times
// compare at whole seconds (HTTP dates have no fraction); a read that fails If-None-Match or
// If-Modified-Since is 304 (ConditionNotMetRead), every other failure 412 ConditionNotMet, and a
// write with If-None-Match: * on an existing blob is 409 BlobAlreadyExists as in Azure.
// Fault model: none (pure).

import { FrontendError } from '../errors.ts';
import type { BlobTag, ETag } from '../model.ts';
import type { Conditions, ETagCondition } from '../operation.ts';
import { evaluateTagPredicate, parseTagPredicate } from './tag-query.ts';

export interface ConditionTarget {
  /** Unquoted ETag (0x…). */
  readonly etag: string;
  readonly modifiedMs: number;
  readonly tags: readonly BlobTag[];
}

export function bareEtag(etag: string): string {
  const weakless = etag.startsWith('W/') ? etag.slice(2) : etag;
  return weakless.length >= 2 && weakless.startsWith('"') && weakless.endsWith('"') ? weakless.slice(1, -1) : weakless;
}

export function quotedEtag(etag: string): ETag {
  return `"${etag}"` as ETag;
}

function matches(condition: ETagCondition, etag: string): boolean {
  return condition.kind === 'any' || condition.etags.some((candidate) => bareEtag(candidate) === etag);
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

function notMet(read: boolean, soft: boolean): FrontendError {
  return new FrontendError(read && soft ? 'ConditionNotMetRead' : 'ConditionNotMet', 'a conditional header is not met');
}

export interface ConditionOptions {
  readonly read: boolean;
  /** What If-None-Match: * on an existing resource means for this write (BlobAlreadyExists, or ConditionNotMet). */
  readonly existsCode?: 'BlobAlreadyExists' | 'ConditionNotMet';
}

/** Throws Azure's error when `conditions` do not hold for `target` (null: it does not exist). */
export function checkConditions(conditions: Conditions, target: ConditionTarget | null, options: ConditionOptions): void {
  if (target === null) {
    if (conditions.ifMatch !== undefined) throw notMet(options.read, false);
    if (conditions.ifTags !== undefined) throw notMet(options.read, false);
    return;
  }
  if (conditions.ifMatch !== undefined && !matches(conditions.ifMatch, target.etag)) throw notMet(options.read, false);
  if (conditions.ifNoneMatch !== undefined && matches(conditions.ifNoneMatch, target.etag)) {
    if (!options.read && conditions.ifNoneMatch.kind === 'any' && options.existsCode === 'BlobAlreadyExists') {
      throw new FrontendError('BlobAlreadyExists', 'the blob exists (If-None-Match: *)');
    }
    throw notMet(options.read, true);
  }
  if (conditions.ifModifiedSince !== undefined && seconds(target.modifiedMs) <= seconds(conditions.ifModifiedSince.getTime())) throw notMet(options.read, true);
  if (conditions.ifUnmodifiedSince !== undefined && seconds(target.modifiedMs) > seconds(conditions.ifUnmodifiedSince.getTime())) throw notMet(options.read, false);
  if (conditions.ifTags !== undefined && !evaluateTagPredicate(parseTagPredicate(conditions.ifTags), target.tags)) throw notMet(options.read, false);
}
