// Where the raw undici client sends a connection string's requests (`kura bench` against any
// path-style endpoint): origin, account and key from the string; anything else a clear error.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rawTarget } from '../../../bench/blob/raw-client.ts';

describe('raw client target', () => {
  it('takes origin, account and key from a path-style connection string', () => {
    const target = rawTarget('DefaultEndpointsProtocol=http;AccountName=acct1;AccountKey=a2V5PQ==;BlobEndpoint=http://10.0.0.7:10000/acct1/;');
    assert.deepEqual(target, { origin: 'http://10.0.0.7:10000', accountName: 'acct1', accountKey: 'a2V5PQ==' });
  });

  it('refuses what it cannot address: no key, https, host-style endpoints', () => {
    assert.throws(() => rawTarget('AccountName=a;BlobEndpoint=http://127.0.0.1:1/a;'), /needs a connection string with BlobEndpoint, AccountName and AccountKey/);
    assert.throws(() => rawTarget('AccountName=a;AccountKey=k;BlobEndpoint=https://127.0.0.1:1/a;'), /plain HTTP only, not https:/);
    assert.throws(() => rawTarget('AccountName=a;AccountKey=k;BlobEndpoint=http://a.blob.localhost:1;'), /path-style endpoints \(http:\/\/host:port\/a\) only/);
  });
});
