// Release tokens (P3, docs/stream-protocol.md "Node protection and release tokens"): the only
// thing that lets an extent node wipe a disk. A token is
//
//   base64url(JSON claims) "." base64url(HMAC-SHA256(secret, first part))
//
// with claims { nodeId, disk, epoch, placementVersion, issuedAtMs }. This module only encodes,
// signs and verifies the signature; whether the claims still hold (same epoch, same
// placementVersion, zero live replicas, not expired) is checked by the stream manager against
// the MetaStore every time a token is presented.
//
// Invariants: a token whose signature does not verify, or whose claims do not parse, yields null
// (never a partial result); the signature is compared in constant time; the secret is at least
// releaseTokenSecretBytes long.
//
// Fault model: tokens are hostile input (forged, truncated, replayed, altered claims). Replay is
// harmless by design: a token only permits a wipe while the node still holds nothing.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { assert } from '../util/assert.ts';
import { byteCount, epoch, nodeId } from './protocol.ts';

/**
 * Canary switch (test-only, TESTING.md "Canary builds"; read once, never set in production):
 * KURA_CANARY_SKIP_PROTECTION=1 makes the stream manager ignore live replicas when it issues or
 * checks a release token, so the simulator can prove it notices a missing protection check.
 */
export const protectionCanary = { skipLiveReplicaCheck: process.env['KURA_CANARY_SKIP_PROTECTION'] === '1' };

/** Bytes of the per-manager HMAC secret (sm/secret): SHA-256's block-strength key. */
export const releaseTokenSecretBytes = 32;

export const releaseTokenClaims = z.object({
  nodeId,
  disk: z.string().min(1).max(256),
  epoch,
  placementVersion: z.number().int().nonnegative(),
  issuedAtMs: byteCount,
});
export type ReleaseTokenClaims = z.infer<typeof releaseTokenClaims>;

export function signReleaseToken(claims: ReleaseTokenClaims, secret: Buffer): string {
  assert(secret.length >= releaseTokenSecretBytes, 'release token secret too short');
  const payload = Buffer.from(JSON.stringify(releaseTokenClaims.parse(claims)), 'utf8').toString('base64url');
  return `${payload}.${mac(payload, secret).toString('base64url')}`;
}

/** The claims of a genuine token, or null if it was not signed with `secret` or is malformed. */
export function verifyReleaseToken(token: string, secret: Buffer): ReleaseTokenClaims | null {
  assert(secret.length >= releaseTokenSecretBytes, 'release token secret too short');
  const parts = token.split('.');
  if (parts.length !== 2) return null;
  const [payload, signature] = parts;
  if (payload === undefined || signature === undefined) return null;
  const expected = mac(payload, secret);
  const presented = Buffer.from(signature, 'base64url');
  // Canonical encoding only: base64url decoding ignores stray trailing bits and characters, so
  // without this check several strings would carry the same signature.
  if (presented.toString('base64url') !== signature) return null;
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return null;
  return parseClaims(payload);
}

function parseClaims(payload: string): ReleaseTokenClaims | null {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  const result = releaseTokenClaims.safeParse(value);
  return result.success ? result.data : null;
}

function mac(payload: string, secret: Buffer): Buffer {
  return createHmac('sha256', secret).update(payload, 'utf8').digest();
}
