// Query strings as real clients send them. '+' is a space (rclone, via Go's url.Values, lists
// `prefix=spaces+and+x%2F`; a directory with a space in its name was skipped by rclone sync).
// SharedKey over query parameters with empty values (`include=` on List Containers, as the Azure
// CLI sends it): the Python SDK signs "\ninclude:", the JavaScript SDK leaves such parameters
// out; both forms verify, and a tamper of either is refused (found by `az storage container list`
// against kura serve).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hmacSha256Base64 } from '../../../src/frontend/auth/canonical.ts';
import { sharedKeyStringToSign } from '../../../src/frontend/auth/shared-key.ts';
import { parseQuery } from '../../../src/frontend/request-parser.ts';
import { account, accountKey, authFixture, head, parseOk } from './helpers.ts';

const nowMs = Date.UTC(2026, 0, 2, 3, 4, 5);
const target = `/${account}/?comp=list&maxresults=5000&include=`;

function signedHead(form: 'omit' | 'include', tamper: (text: string) => string = (text) => text): ReturnType<typeof head> {
  const headers = { 'x-ms-date': new Date(nowMs).toUTCString(), 'x-ms-version': '2021-06-08' };
  const map = new Map(Object.entries(headers));
  const text = sharedKeyStringToSign({ method: 'GET', account, rawPath: `/${account}/`, query: parseQuery('comp=list&maxresults=5000&include='), headers: map, version: '2021-06-08' }, form);
  return head('GET', target, { ...headers, authorization: `SharedKey ${account}:${hmacSha256Base64(accountKey, tamper(text))}` });
}

test('an empty-valued query parameter verifies signed either way, and tampers are refused', async () => {
  const { authorizer } = authFixture(nowMs);
  for (const form of ['omit', 'include'] as const) {
    assert.deepEqual(await authorizer.authorize(parseOk(signedHead(form))), { kind: 'sharedKey' }, form);
    await assert.rejects(authorizer.authorize(parseOk(signedHead(form, (text) => text.replace('maxresults:5000', 'maxresults:5001')))), /AuthenticationFailed|signature/i);
  }
  const python = sharedKeyStringToSign({ method: 'GET', account, rawPath: `/${account}/`, query: parseQuery('include=&comp=list'), headers: new Map(), version: null }, 'include');
  assert.match(python, /\ncomp:list\ninclude:$/);
});

test('query values are form-decoded: + is a space, %2B a plus', () => {
  const query = parseQuery('prefix=spaces+and+%C3%BCn%2Bx%2F&delimiter=%2F&a+b=c');
  assert.deepEqual(query.get('prefix'), ['spaces and ün+x/']);
  assert.deepEqual(query.get('delimiter'), ['/']);
  assert.deepEqual(query.get('a b'), ['c']);
});
