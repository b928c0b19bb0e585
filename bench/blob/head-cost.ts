// `node bench/blob/head-cost.ts [--heads 20000] [--rounds 40]`: the front end's CPU per request head
// before any I/O: parseRequest + SharedKey verification (authorizeSigned) of an SDK-shaped Put Blob
// head (the 11 headers @azure/storage-blob 12.32 sends, each request with its own name, client
// request id and signature), measured as this thread's CPU (process.threadCpuUsage), so a loaded
// machine's descheduling is left out (wall time spread 3-8x at load 17 where this spreads ±5 %).
// Prints the best and median round. For an A/B, run each tree's own copy (see bench/README.md,
// "Interleaved A/B").
import { headerUsage, parseBenchArgs, positiveIntegerOption } from '../lib/cli-args.ts';
import { Authorizer } from '../../src/frontend/auth/authorizer.ts';
import { hmacSha256Base64 } from '../../src/frontend/auth/canonical.ts';
import { sharedKeyStringToSign } from '../../src/frontend/auth/shared-key.ts';
import { parseRequest, type RequestHead } from '../../src/frontend/request-parser.ts';
import { developmentAccountKey } from '../../src/stamp/account-store.ts';
import { SystemClock } from '../../src/util/clock.ts';

const values = parseBenchArgs(headerUsage(import.meta.url), { heads: { type: 'string' }, rounds: { type: 'string' } });
const headCount = Math.min(100_000, positiveIntegerOption(values.heads, 20_000, 'heads'));
const rounds = Math.min(200, positiveIntegerOption(values.rounds, 40, 'rounds'));
const account = 'devstoreaccount1';
const apiVersion = '2026-04-06';
const key = Buffer.from(developmentAccountKey, 'base64');
const authorizer = new Authorizer({
  clock: new SystemClock(), accountKeys: (name) => (name === account ? [key] : null),
  storedPolicy: () => Promise.resolve(null), publicAccess: () => Promise.resolve(null),
});

/** The head the SDK sends for Put Blob of 4 KiB, signed as the SDK signs it. */
function sdkPutHead(index: number, date: string): RequestHead {
  const pairs: [string, string][] = [
    ['Content-Type', 'application/octet-stream'], ['x-ms-version', apiVersion], ['Content-Length', '4096'], ['Accept', 'application/xml'],
    ['x-ms-blob-type', 'BlockBlob'], ['User-Agent', 'azsdk-js-azure-storage-blob/12.32.0 core-rest-pipeline/1.24.0 Node/24.21.0 (Linux 6.18.44; x64)'],
    ['x-ms-client-request-id', `3f583723-c28e-41c3-b9bc-${String(index).padStart(12, '0')}`], ['x-ms-date', date],
    ['Host', '127.0.0.1:41703'], ['Connection', 'keep-alive'],
  ];
  const target = `/${account}/cont/p-${index}`;
  const headers = new Map(pairs.map(([name, value]) => [name.toLowerCase(), value]));
  const text = sharedKeyStringToSign({ method: 'PUT', account, rawPath: target, query: new Map(), headers, version: apiVersion });
  pairs.push(['Authorization', `SharedKey ${account}:${hmacSha256Base64(key, text)}`]);
  return { method: 'PUT', target, rawHeaders: pairs.flat(), clientAddress: '127.0.0.1', secure: false };
}

const date = new Date().toUTCString();
const heads = Array.from({ length: headCount }, (_, index) => sdkPutHead(index, date));
const perHeadNs: number[] = [];
for (let round = 0; round < rounds; round++) {
  const before = process.threadCpuUsage();
  for (const head of heads) {
    const parsed = parseRequest(head, { apiVersionLatest: apiVersion });
    if (!parsed.ok) throw parsed.error;
    if (authorizer.authorizeSigned(parsed.request) === null) throw new Error('the head is not signed');
  }
  const used = process.threadCpuUsage(before);
  perHeadNs.push(((used.user + used.system) * 1000) / headCount);
}
perHeadNs.sort((left, right) => left - right);
const median = perHeadNs[Math.floor(rounds / 2)] ?? Number.NaN;
console.log(`parseRequest + SharedKey per SDK Put Blob head (thread CPU, ${headCount} heads x ${rounds} rounds): best ${(perHeadNs[0] ?? Number.NaN).toFixed(0)} ns, median ${median.toFixed(0)} ns`);
