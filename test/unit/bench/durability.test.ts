// The kill -9 durability check's counting, against an in-process stand-in peer built on the
// null server: a restart that forgets everything must count every acknowledged blob missing
// (and hand them back as lost, container included); a restart that keeps names and lengths
// counts none missing by listing, and — since the null server serves a fixed buffer, not the
// bytes written — every blob "different" by read-back, proving a byte comparison is made.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { checkDurability } from '../../../bench/blob/durability.ts';
import { NullBlobService, startNullServer } from '../../../bench/blob/null-server.ts';
import { payloadFor, type LedgerEntry } from '../../../bench/blob/payload.ts';
import { devConnectionString, type BenchPeer, type PeerEndpoint, type PeerPersistence } from '../../../bench/blob/peer.ts';
import { readProcessSample, type ProcessSample } from '../../../bench/blob/proc-sample.ts';
import { SdkBlobClient } from '../../../bench/blob/sdk-client.ts';

class InProcessPeer implements BenchPeer {
  readonly name = 'in-process';
  readonly persistence: PeerPersistence = { kind: 'durable' };
  private readonly keepsState: boolean;
  private service = new NullBlobService();
  private server: Server | null = null;
  private port = 0;

  constructor(options: { readonly keepsState: boolean }) {
    this.keepsState = options.keepsState;
  }

  async start(): Promise<PeerEndpoint> {
    ({ server: this.server, port: this.port } = await startNullServer(this.port, this.service));
    return { connectionString: devConnectionString(this.port), pid: process.pid };
  }

  async kill9(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  async restart(): Promise<PeerEndpoint> {
    await this.kill9();
    if (!this.keepsState) this.service = new NullBlobService();
    return this.start();
  }

  stop(): Promise<void> {
    return this.kill9();
  }

  sample(): ProcessSample {
    return readProcessSample(process.pid);
  }
}

async function writeLedger(peer: InProcessPeer, count: number): Promise<LedgerEntry[]> {
  const endpoint = await peer.start();
  const client = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 });
  await client.createContainer('ledger');
  const ledger: LedgerEntry[] = [];
  for (let index = 0; index < count; index++) {
    const name = `p/${index}`;
    await client.putBlob('ledger', name, payloadFor(name, 1000));
    ledger.push({ container: 'ledger', name, sizeBytes: 1000, blockCount: 1 });
  }
  return ledger;
}

const common = { concurrency: 4, deadlineMs: 30_000, listPageSize: 7 } as const;

describe('kill -9 durability check', () => {
  it('counts every acknowledged blob missing when the restart forgets everything', async () => {
    for (const method of ['read-back', 'listing'] as const) {
      const peer = new InProcessPeer({ keepsState: false });
      try {
        const ledger = await writeLedger(peer, 20);
        const { result, lost } = await checkDurability({ peer, ledger, method, ...common });
        assert.deepEqual({ ...result, restartMs: 0 }, { kind: 'checked', acknowledged: 20, missing: 20, different: 0, unreadable: 0, method, restartMs: 0 });
        assert.equal(lost.length, 20);
      } finally {
        await peer.stop();
      }
    }
  });

  it('finds kept names by listing, and compares bytes on read-back', async () => {
    const peer = new InProcessPeer({ keepsState: true });
    try {
      const ledger = await writeLedger(peer, 20);
      const listing = await checkDurability({ peer, ledger, method: 'listing', ...common });
      assert.equal(listing.result.kind === 'checked' ? listing.result.missing + listing.result.different : -1, 0);
      assert.equal(listing.lost.length, 0);
      const readBack = await checkDurability({ peer, ledger, method: 'read-back', ...common });
      assert.equal(readBack.result.kind === 'checked' ? readBack.result.different : -1, 20);
    } finally {
      await peer.stop();
    }
  });

  it('does not apply to peers that keep nothing by design', async () => {
    const peer = new InProcessPeer({ keepsState: true });
    Object.defineProperty(peer, 'persistence', { value: { kind: 'volatile', why: 'memory' } });
    const { result, lost } = await checkDurability({ peer, ledger: [], method: 'read-back', ...common });
    assert.deepEqual(result, { kind: 'not-applicable', why: 'memory' });
    assert.equal(lost.length, 0);
  });
});
