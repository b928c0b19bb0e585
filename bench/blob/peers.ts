// The peers the blob benchmark compares: Azurite from the npm registry (disk and in-memory),
// the null server (the client's own ceiling) and Kura's embedded default (`kura serve` with
// one and three disks). Every one is started with the Node binary running the benchmark
// (Node 24 from node_modules), on 127.0.0.1 only.
import { join } from 'node:path';
import { ProcessPeer, type LaunchContext } from './process-peer.ts';
import type { BenchPeer } from './peer.ts';

const repositoryRoot = join(import.meta.dirname, '..', '..');
const azuriteBlobMain = join(repositoryRoot, 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js');
const kuraMain = join(repositoryRoot, 'src', 'main', 'kura.ts');
const nullServerMain = join(import.meta.dirname, 'null-server.ts');
const readyTimeoutMs = 30_000;

/**
 * Azurite's blob service. `--silent` turns off its per-request access log on stdout;
 * `--disableTelemetry` keeps it from reporting usage over the network (loopback only here).
 */
export function azuritePeer(mode: 'disk' | 'memory'): BenchPeer {
  return new ProcessPeer({
    name: mode === 'disk' ? 'azurite-disk' : 'azurite-memory',
    persistence: mode === 'disk' ? { kind: 'durable' } : { kind: 'volatile', why: 'in-memory mode keeps nothing across a restart by design' },
    readyTimeoutMs,
    launch: ({ port, dataDirectory }: LaunchContext) => ({
      command: process.execPath,
      args: [
        azuriteBlobMain,
        '--blobHost', '127.0.0.1', '--blobPort', String(port),
        // Azurite refuses --location with --inMemoryPersistence; its working directory is the
        // temporary data directory either way.
        ...(mode === 'memory' ? ['--inMemoryPersistence'] : ['--location', dataDirectory]),
        '--skipApiVersionCheck', '--loose', '--silent', '--disableTelemetry',
      ],
    }),
  });
}

/** The null server of null-server.ts in its own process, so its CPU is not the client's. */
export function nullServerPeer(): BenchPeer {
  return new ProcessPeer({
    name: 'null-server',
    persistence: { kind: 'discards', why: 'discards uploads: the client ceiling, not a store' },
    readyTimeoutMs,
    launch: ({ port }: LaunchContext) => ({ command: process.execPath, args: [nullServerMain, '--port', String(port)] }),
  });
}

/** `kura serve` prints this line once it listens: its connection string. */
export const kuraConnectionStringLine = /^(DefaultEndpointsProtocol=http;AccountName=[^;]+;AccountKey=[^;]+;BlobEndpoint=http:\/\/[^;]+;)\s*$/;

export interface KuraPeerOptions {
  /** Extra Node options for the server process, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  readonly nodeArgs?: readonly string[];
  /** Extra `kura serve` flags, e.g. ['--admin', '127.0.0.1:9100', '--inline-body-bytes', '0']. */
  readonly serveArgs?: readonly string[];
  /** A file that gets the server's whole stdout and stderr (a --trace-gc log), appended. */
  readonly outputFile?: string;
}

/**
 * Kura's embedded default (`kura serve`), one fault domain per `--disk`: disk0 … disk<n-1>
 * under the peer's temporary data directory, the blob endpoint on 127.0.0.1:<free port>. Ready
 * when it printed its connection string (after it listens) and the port accepts; that printed
 * connection string is the one the clients use. kill -9 and restart reuse the same disks and
 * port. A build whose `kura serve` exits at once is reported "not available" with its message.
 */
export function kuraServePeer(diskCount: number, options: KuraPeerOptions = {}): BenchPeer {
  return new ProcessPeer({
    name: `kura-${diskCount}disk`,
    persistence: { kind: 'durable' },
    readyTimeoutMs,
    connectionStringLine: kuraConnectionStringLine,
    ...(options.outputFile === undefined ? {} : { outputFile: options.outputFile }),
    launch: ({ port, dataDirectory }: LaunchContext) => ({
      command: process.execPath,
      args: [
        ...(options.nodeArgs ?? []),
        kuraMain, 'serve',
        ...Array.from({ length: diskCount }, (_, index) => ['--disk', join(dataDirectory, `disk${index}`)]).flat(),
        '--blob-host', '127.0.0.1', '--blob-port', String(port),
        ...(options.serveArgs ?? []),
      ],
    }),
  });
}
