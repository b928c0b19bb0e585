// A Blob client process for multi-host tests: run inside a test host's network namespace (the
// test process cannot reach a host it cut off), it writes small unique blobs and, in a second
// loop, reads the properties of an anchor blob, through one front end, and prints one JSON line per
// operation on stdout: {"msg":"probe","kind":"write"|"read","name","ok","startMs","endMs",
// "digest" (writes: SHA-256 of the bytes), "error"}. Times are wall-clock ms, comparable with the
// roles' pino "time" fields (every namespace shares the machine's clock).
//
//   node blob-prober.ts <endpoint host:port> <container> <anchor blob> <name prefix>
//
// Each operation is bounded (probeTimeoutMs) and the SDK does not retry, so a refused or hung
// request is one failed line, and probing goes on. SIGTERM stops it after the operation in flight.
import { containerAt, payload, sha } from './blob-ledger.ts';

const probeTimeoutMs = 3_000;
const pauseMs = 50;

const [endpoint = '', containerName = '', anchor = '', prefix = ''] = process.argv.slice(2);
const container = containerAt(endpoint, containerName);
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});

function report(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ msg: 'probe', ...line })}\n`);
}

async function probe(kind: 'write' | 'read', name: string, operation: (signal: AbortSignal) => Promise<unknown>, digest?: string): Promise<void> {
  const startMs = Date.now();
  try {
    await operation(AbortSignal.timeout(probeTimeoutMs));
    report({ kind, name, ok: true, startMs, endMs: Date.now(), digest });
  } catch (error) {
    report({ kind, name, ok: false, startMs, endMs: Date.now(), error: (error as Error).message.slice(0, 200) });
  }
}

async function writes(): Promise<void> {
  for (let sequence = 0; !stopping; sequence++) {
    const name = `${prefix}${String(sequence).padStart(6, '0')}`;
    const bytes = payload(name, 1024);
    await probe('write', name, (abortSignal) => container.getBlockBlobClient(name).uploadData(bytes, { abortSignal }), sha(bytes));
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}

async function reads(): Promise<void> {
  while (!stopping) {
    await probe('read', anchor, (abortSignal) => container.getBlobClient(anchor).getProperties({ abortSignal }));
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}

process.stdout.write(`${JSON.stringify({ msg: 'prober ready', endpoint })}\n`);
// Two loops: a write stuck on unreachable extent nodes must not keep reads (answered from the
// owner's memory) from probing whether the owner still answers.
await Promise.all([writes(), reads()]);
process.stdout.write(`${JSON.stringify({ msg: 'prober stopped' })}\n`);
