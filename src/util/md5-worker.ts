// The body of an Md5Pool worker thread (md5-pool.ts): keeps one MD5 state per session id and
// answers every message in order. Messages: update (hash the bytes, answer 'ok'), digest (answer
// the digest and forget the session), drop (forget it). It holds no other state; a session the
// main thread dropped is forgotten, so its memory is one Hash per live session.
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { assert } from './assert.ts';

export type Md5Request =
  | { readonly kind: 'update'; readonly session: number; readonly bytes: Uint8Array }
  | { readonly kind: 'digest'; readonly session: number }
  | { readonly kind: 'drop'; readonly session: number };

export type Md5Answer = { readonly kind: 'ok'; readonly session: number } | { readonly kind: 'digest'; readonly session: number; readonly digest: Uint8Array };

const port = parentPort;
assert(port !== null, 'md5-worker.ts runs as a worker thread');
const hashes = new Map<number, Hash>();

port.on('message', (request: Md5Request) => {
  switch (request.kind) {
    case 'update': {
      const hash = hashes.get(request.session) ?? createHash('md5');
      hashes.set(request.session, hash.update(request.bytes));
      port.postMessage({ kind: 'ok', session: request.session } satisfies Md5Answer);
      return;
    }
    case 'digest': {
      const digest = (hashes.get(request.session) ?? createHash('md5')).digest();
      hashes.delete(request.session);
      port.postMessage({ kind: 'digest', session: request.session, digest } satisfies Md5Answer);
      return;
    }
    case 'drop':
      hashes.delete(request.session);
      return;
  }
});
