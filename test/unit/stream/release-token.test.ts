// Release tokens (P3) as hostile input: only a token signed with the manager's secret, with
// well-formed claims, verifies; any altered byte, another secret or garbage yields null.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { signReleaseToken, verifyReleaseToken } from '../../../src/stream/release-token.ts';
import { SeededRandom } from '../../../src/util/random.ts';

const random = new SeededRandom(7);
const secret = random.bytes(32);
const claims = { nodeId: 'en1', disk: '/data/en1', epoch: 3, placementVersion: 12, issuedAtMs: 1_700_000_000_000 };

describe('release tokens', () => {
  it('round-trips claims signed with the secret', () => {
    assert.deepEqual(verifyReleaseToken(signReleaseToken(claims, secret), secret), claims);
  });

  it('rejects another secret, altered claims and garbage', (t) => {
    const token = signReleaseToken(claims, secret);
    assert.equal(verifyReleaseToken(token, random.bytes(32)), null);
    const [, signature] = token.split('.');
    const forged = `${Buffer.from(JSON.stringify({ ...claims, placementVersion: 13 })).toString('base64url')}.${signature}`;
    assert.equal(verifyReleaseToken(forged, secret), null);
    let rejected = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: token.length - 1 }), fc.integer({ min: 0, max: 63 }), (index, replacement) => {
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const altered = token.slice(0, index) + alphabet[replacement] + token.slice(index + 1);
        if (altered === token) return;
        assert.equal(verifyReleaseToken(altered, secret), null, `altered at ${index}`);
        rejected += 1;
      }),
      { numRuns: 500 },
    );
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (garbage) => {
      assert.equal(verifyReleaseToken(garbage, secret), null);
    }), { numRuns: 300 });
    t.diagnostic(`${rejected} single-character alterations, all rejected; 300 garbage strings rejected`);
  });
});
