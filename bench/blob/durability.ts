// The built-in durability check (issue 5): right after a write workload, kill -9 the server,
// restart it on the same data directory and port, then count acknowledged writes that are
// missing or differ. Reads go through a fresh SDK client that retries transient network
// errors, so a connection refused during the restart is not mistaken for a lost blob; a blob is
// "missing" only on a 404 and "different" only when its bytes do not match the ledger.
import { SdkBlobClient } from './sdk-client.ts';
import type { BenchPeer } from './peer.ts';
import { StreamVerifier, type LedgerEntry } from './payload.ts';
import type { DurabilityResult } from './results.ts';

export interface DurabilityOptions {
  readonly peer: BenchPeer;
  readonly ledger: readonly LedgerEntry[];
  readonly concurrency: number;
  readonly deadlineMs: number;
  readonly method: 'read-back' | 'listing';
  readonly listPageSize: number;
}

export interface DurabilityOutcome {
  readonly result: DurabilityResult;
  /** Acknowledged blobs not found intact: a workload that reads them next writes them again. */
  readonly lost: readonly LedgerEntry[];
}

export async function checkDurability(options: DurabilityOptions): Promise<DurabilityOutcome> {
  const persistence = options.peer.persistence;
  if (persistence.kind !== 'durable') return { result: { kind: 'not-applicable', why: persistence.why }, lost: [] };
  const t0 = performance.now();
  await options.peer.kill9();
  const endpoint = await options.peer.restart();
  const restartMs = performance.now() - t0;
  const client = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 4 });
  try {
    const { lost, ...counts } = options.method === 'listing' ? await countByListing(client, options) : await countByReading(client, options);
    return { result: { kind: 'checked', acknowledged: options.ledger.length, ...counts, method: options.method, restartMs }, lost };
  } finally {
    await client.close();
  }
}

interface LossCounts {
  readonly missing: number;
  readonly different: number;
  readonly unreadable: number;
  readonly lost: LedgerEntry[];
}

/** Reads every acknowledged blob back and compares it byte for byte. */
async function countByReading(client: SdkBlobClient, options: DurabilityOptions): Promise<LossCounts> {
  let missing = 0;
  let different = 0;
  let unreadable = 0;
  let next = 0;
  const lost: LedgerEntry[] = [];
  const deadline = performance.now() + options.deadlineMs;
  const worker = async (): Promise<void> => {
    while (next < options.ledger.length) {
      const entry = options.ledger[next++];
      if (entry === undefined) return;
      const outcome = performance.now() > deadline ? 'unreadable' : await readOne(client, entry);
      if (outcome === 'same') continue;
      lost.push(entry);
      if (outcome === 'missing') missing += 1;
      else if (outcome === 'different') different += 1;
      else unreadable += 1;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { missing, different, unreadable, lost };
}

async function readOne(client: SdkBlobClient, entry: LedgerEntry): Promise<'same' | 'missing' | 'different' | 'unreadable'> {
  const verifier = new StreamVerifier(entry);
  try {
    const bytes = await client.readBlobStream(entry.container, entry.name, (chunk) => verifier.push(chunk));
    if (bytes === null) return 'missing';
    return verifier.matches() ? 'same' : 'different';
  } catch {
    return 'unreadable';
  }
}

/** Lists each container once and compares names and lengths (for the 100,000-blob listing). */
async function countByListing(client: SdkBlobClient, options: DurabilityOptions): Promise<LossCounts> {
  const listed = new Map<string, number>();
  const deadline = performance.now() + options.deadlineMs;
  try {
    for (const container of new Set(options.ledger.map((entry) => entry.container))) {
      let marker: string | undefined;
      do {
        if (performance.now() > deadline) throw new Error('listing check ran out of time');
        const page = await client.listPage(container, marker, options.listPageSize);
        for (const blob of page.blobs) listed.set(`${container}/${blob.name}`, blob.contentLength);
        marker = page.nextMarker;
      } while (marker !== undefined);
    }
  } catch {
    return { missing: 0, different: 0, unreadable: options.ledger.length, lost: [...options.ledger] };
  }
  let missing = 0;
  let different = 0;
  const lost: LedgerEntry[] = [];
  for (const entry of options.ledger) {
    const length = listed.get(`${entry.container}/${entry.name}`);
    if (length === entry.sizeBytes) continue;
    lost.push(entry);
    if (length === undefined) missing += 1;
    else different += 1;
  }
  return { missing, different, unreadable: 0, lost };
}
