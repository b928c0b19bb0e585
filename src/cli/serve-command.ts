// `kura serve`: the embedded default (DESIGN.md §3 "Modes"): a whole stamp in one process, data
// under ./data (or one fault domain per --disk), the Blob endpoint where Azurite listens
// (127.0.0.1:10000; queue 10001 and table 10002 reserved), the development account
// devstoreaccount1 with its published key. It only parses flags and wires EmbeddedStamp
// (src/stamp/embedded-stamp.ts), which holds the assembly.
//
// Lifecycle: lock the data directories → start the stamp (MetaStore, stream layer, partition
// layer, accounts) → listen → print the redundancy statement, the endpoint, the time to ready and
// the connection string on stdout → serve until SIGTERM/SIGINT, or until every disk has failed
// (src/stamp/disk-failure-watch.ts: then nothing can be written, so it stops, exit 1, naming each
// disk's cause and what to do on stderr) → stop every role → exit. The stop
// is bounded (EmbeddedStamp.stop: requests in flight drain for stampStopDrainMs, then are cut; each
// role's step is bounded; the whole stop within stampStopTimeoutMs) and the process then exits
// explicitly, so no leftover timer or socket can keep it alive: exit 0 when every step finished,
// 1 when one failed or was abandoned (named on stderr), 1 from a watchdog if the stop ever ran
// past its bound, 1 at once on a second signal. kill -9 is survived: journals, the MetaStore log and the
// partition commit logs are replayed by the next start, and the stale lock is taken over.
// A start that fails (port in use, a data directory held by another kura, an unreadable disk)
// prints "kura serve: <reason>" on stderr and exits 1. JSON logs go to stderr.
import type { Command } from 'commander';
import { pino } from 'pino';
import { dataCacheMibLimit, directReadBuffersPerStamp, directWriteBuffers, directStagingBuffersLimit, directWriteBuffersPerStamp, frontendDataCacheBytes, inlineBodyBytesDefault, inlineBodyBytesLimit, readBufferPoolBytesDefault, stampStopTimeoutMs } from '../constants.ts';
import { copySourceAllowDefault, parseCopySourcePolicy } from '../frontend/blob-service/copy-source-policy.ts';
import { AdminServer, type Readiness } from '../observability/admin-server.ts';
import { createProcessRegistry } from '../observability/process-registry.ts';
import { developmentAccountKey, developmentAccountName } from '../stamp/account-store.ts';
import { failedDiskAdvice, watchDiskFailures, type FailedDisk } from '../stamp/disk-failure-watch.ts';
import { EmbeddedStamp, redundancy } from '../stamp/embedded-stamp.ts';
import { SystemClock } from '../util/clock.ts';
import { positiveInteger, reportingErrors, waitForSignal } from './process-lifecycle.ts';
import { armFailpointsAfterReady } from '../util/failpoints.ts';

/** Azurite's ports, so tools configured for the emulator work unchanged. */
export const blobPortDefault = 10_000;
export const queuePortReserved = 10_001;
export const tablePortReserved = 10_002;
export const dataDirectoryDefault = './data';
/** The watchdog fires this long after the stop's own bound (the admin port's close runs after it). */
const stopWatchdogSlackMs = 5_000;

interface ServeFlags {
  readonly disk?: readonly string[];
  readonly host: string;
  readonly blobHost?: string;
  readonly blobPort: string;
  readonly admin?: string;
  readonly copySourceAllow?: readonly string[];
  readonly inlineBodyBytes: string;
  readonly readBufferPoolBytes: string;
  readonly directWriteBuffers?: string;
  readonly directReadBuffers?: string;
  readonly dataCacheMib: string;
  readonly logLevel: string;
}

/** --inline-body-bytes: 0..inlineBodyBytesLimit. */
export function inlineBodyBytes(text: string): number {
  const value = /^\d{1,8}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value <= inlineBodyBytesLimit)) throw new Error(`--inline-body-bytes must be an integer 0..${inlineBodyBytesLimit}, got ${JSON.stringify(text)}`);
  return value;
}

/** --data-cache-mib: 0 (off) up to dataCacheMibLimit. */
export function dataCacheMib(text: string): number {
  const value = /^\d{1,4}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value <= dataCacheMibLimit)) throw new Error(`--data-cache-mib must be an integer 0..${dataCacheMibLimit}, got ${JSON.stringify(text)}`);
  return value;
}

/** --data-cache-mib's help, the same for `kura serve` and `kura frontend`. */
export const dataCacheMibHelp = 'MiB of small blob pieces (up to 1 MiB each) the front end keeps by data-stream ref, so a hot small blob is read without the data-stream hops; a ref\'s bytes never change and the blob row is read on every Get (docs/blob-schema.md "Bytes"); 0 switches it off';

/** --read-buffer-pool-bytes: 0 (off) up to 1 GiB. */
export function readBufferPoolBytes(text: string): number {
  const value = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value <= 1024 * 1024 * 1024)) throw new Error(`--read-buffer-pool-bytes must be an integer 0..1073741824, got ${JSON.stringify(text)}`);
  return value;
}

/** --direct-write-buffers, --direct-read-buffers: 0 (that O_DIRECT off) up to directStagingBuffersLimit. */
export function stagingBufferCount(text: string, flag: string): number {
  const value = /^\d{1,3}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value <= directStagingBuffersLimit)) throw new Error(`${flag} must be an integer 0..${directStagingBuffersLimit}, got ${JSON.stringify(text)}`);
  return value;
}

/** commander collector for a repeatable flag. */
export function collect(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The data directories: every --disk in order, or ./data. */
export function disksOf(flags: { readonly disk?: readonly string[] }): readonly string[] {
  return flags.disk === undefined || flags.disk.length === 0 ? [dataDirectoryDefault] : flags.disk;
}

/** Azure's connection-string form, path-style endpoint as the emulator's. */
export function connectionString(options: { readonly account: string; readonly key: string; readonly host: string; readonly port: number }): string {
  return `DefaultEndpointsProtocol=http;AccountName=${options.account};AccountKey=${options.key};BlobEndpoint=http://${options.host}:${options.port}/${options.account};`;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('Run a whole stamp in one process (the embedded default): every role, data under ./data, the Blob endpoint where Azurite listens, the development account devstoreaccount1. Prints the connection string to use.')
    .option('--disk <dir>', 'a data directory, one fault domain each (repeatable; default ./data). Replicas per extent = min(3, number of --disk); with one there is NO redundancy. The first also holds the metadata log. A directory is locked while kura uses it', collect)
    .option('--host <host>', 'address the Blob endpoint listens on (loopback by default: there is no TLS)', '127.0.0.1')
    .option('--blob-host <host>', 'same as --host (the Blob endpoint\'s address); wins over --host if both are given')
    .option('--blob-port <port>', `port of the Blob endpoint (Azurite's); the queue (${queuePortReserved}) and table (${tablePortReserved}) ports are reserved for those services, not served yet`, String(blobPortDefault))
    .option('--admin <addr>', 'host:port of the admin HTTP server (off unless given; no authentication, so bind loopback): GET /metrics (Prometheus text of the stream layer), GET /healthz (200 while the process is alive), GET /readyz (200 once the stamp serves, else 503)')
    .option('--copy-source-allow <rule>', 'hosts Copy Blob / Copy Blob From URL / Put Block From URL may fetch sources from, outside this endpoint (repeatable): public (default: public addresses only), none, any, a CIDR (127.0.0.1/32) or host[:port]. The --admin address is always refused. docs/copy-sources.md', collect)
    .option('--inline-body-bytes <n>', `Put Blob bodies of 1..n bytes are stored inline in the blob row: one durable append per small Put Blob instead of two (docs/blob-schema.md, "Inline bodies"); 0 switches it off; at most ${inlineBodyBytesLimit}`, String(inlineBodyBytesDefault))
    .option('--read-buffer-pool-bytes <n>', 'large blocks read for Get Blob go into reused buffers, given back once sent (no page faults and no garbage collection per 4 MiB read); the free list holds at most n bytes; 0 switches reuse off', String(readBufferPoolBytesDefault))
    .option('--direct-write-buffers <n>', `aligned staging buffers (8 MiB each, made on first need, kept) the disks share for O_DIRECT writes of large blocks; a large write that finds none free goes through the page cache (counted in kura_disk_large_writes_total); 0 turns O_DIRECT writes off (the P4 off switch); default min(${directWriteBuffers} × disks, ${directWriteBuffersPerStamp}), at most ${directStagingBuffersLimit}`)
    .option('--direct-read-buffers <n>', `aligned staging buffers (8 MiB each, made on first need, kept) the disks share for O_DIRECT reads of large blocks (1 MiB and more; copied out, so a download never holds one); a large read that finds none free goes through the page cache (counted in kura_disk_large_reads_total); 0 turns O_DIRECT reads off (the P4 off switch); default ${directReadBuffersPerStamp}, at most ${directStagingBuffersLimit}`)
    .option('--data-cache-mib <n>', dataCacheMibHelp, String(frontendDataCacheBytes / (1024 * 1024)))
    .option('--log-level <level>', 'pino log level of the JSON logs on stderr: fatal, error, warn, info, debug, trace', 'warn')
    .action(async (flags: ServeFlags) => {
      await reportingErrors('serve', () => runServe(flags));
      // Everything is stopped (or abandoned, bounded): nothing may keep the process alive.
      process.exit();
    });
}

async function runServe(flags: ServeFlags): Promise<void> {
  const logger = pino({ level: flags.logLevel, base: { role: 'serve', pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
  const disks = disksOf(flags);
  const host = flags.blobHost ?? flags.host;
  const port = positiveInteger(flags.blobPort, '--blob-port');
  const clock = new SystemClock();
  // Metrics only when they can be read (docs/metrics.md: wired only with --admin). Without it no
  // one subscribes to the extent nodes' events, so an append or read costs them one boolean check,
  // not a timed event and a histogram observation (~2 % of a 4 KiB Put Blob's main thread).
  const metrics = flags.admin === undefined ? null : { address: flags.admin, registry: createProcessRegistry({ role: 'serve' }) };
  let stamp: EmbeddedStamp | null = null;
  const admin = metrics === null ? null : await AdminServer.start({ address: metrics.address, registry: metrics.registry, logger, readiness: () => readiness(stamp) });
  try {
    const copySource = { policy: parseCopySourcePolicy(flags.copySourceAllow ?? copySourceAllowDefault, flags.admin === undefined ? [] : [flags.admin]) };
    stamp = await EmbeddedStamp.start({ disks, clock, logger, blob: { host, port }, ...(metrics === null ? {} : { registry: metrics.registry }), role: 'serve', copySource, inlineBodyBytesMax: inlineBodyBytes(flags.inlineBodyBytes), readBufferPoolBytes: readBufferPoolBytes(flags.readBufferPoolBytes),
      dataCacheBytes: dataCacheMib(flags.dataCacheMib) * 1024 * 1024,
      ...(flags.directWriteBuffers === undefined ? {} : { directWriteBuffers: stagingBufferCount(flags.directWriteBuffers, '--direct-write-buffers') }),
      ...(flags.directReadBuffers === undefined ? {} : { directReadBuffers: stagingBufferCount(flags.directReadBuffers, '--direct-read-buffers') }),
    });
    // key1 as stored: the published key unless an operator rotated it.
    const key = stamp.accounts.get(developmentAccountName)?.key1.toString('base64') ?? developmentAccountKey;
    // Handlers first, then the banner: a supervisor may send SIGTERM the moment it reads the banner,
    // and a SIGTERM with no handler installed kills the process without its stop.
    const stopRequested = waitForSignal(logger.child({ component: 'shutdown' }));
    const diskWatch = watchDiskFailures(stamp.extentNodes, logger.child({ component: 'disks' }));
    armFailpointsAfterReady();
    printBanner({ disks, host, port: stamp.blobPort ?? port, readyMs: stamp.startup.totalMs, key });
    const failedDisks = await Promise.race([stopRequested.then(() => null), diskWatch.everyDiskFailed]);
    diskWatch.close();
    if (failedDisks !== null) reportEveryDiskFailed(failedDisks);
    armStopWatchdog();
    const report = await stamp.stop();
    process.stdout.write(`Stopped in ${report.totalMs} ms (${report.requestsCut} requests cut after the drain)\n`);
    const unclean = [...report.failedSteps.map((step) => `${step} failed`), ...report.overdueSteps.map((step) => `${step} abandoned past its bound`)];
    if (unclean.length > 0) {
      process.stderr.write(`kura serve: stopped in ${report.totalMs} ms, not cleanly: ${unclean.join(', ')}\n`);
      process.exitCode = 1;
    }
  } finally {
    await stamp?.stop();
    await admin?.close();
  }
  logger.info('kura serve exited');
}

/** Every disk failed: nothing can be written or reloaded, so the process stops (exit 1) saying why. */
function reportEveryDiskFailed(failedDisks: readonly FailedDisk[]): void {
  const causes = failedDisks.map((failed) => `${failed.disk} (${failed.cause})`).join('; ');
  process.stderr.write(`kura serve: stopping: every disk failed, so nothing can be written: ${causes}. To fix: ${failedDiskAdvice}\n`);
  process.exitCode = 1;
}

function printBanner(options: { readonly disks: readonly string[]; readonly host: string; readonly port: number; readonly readyMs: number; readonly key: string }): void {
  const { statement } = redundancy(options.disks.length);
  const lines = [
    `Kura stamp on ${options.disks.length} disk(s): ${options.disks.join(', ')}`,
    statement,
    `Blob endpoint: http://${options.host}:${options.port}/${developmentAccountName} (queue ${queuePortReserved} and table ${tablePortReserved} reserved, not served yet)`,
    `Ready in ${options.readyMs} ms. Connection string:`,
    connectionString({ account: developmentAccountName, key: options.key, host: options.host, port: options.port }),
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

/** The stop is bounded step by step; this is the backstop if something outside it hangs. */
function armStopWatchdog(): void {
  const timer = setTimeout(() => {
    process.stderr.write(`kura serve: the stop ran past ${stampStopTimeoutMs + stopWatchdogSlackMs} ms; exiting\n`);
    process.exit(1);
  }, stampStopTimeoutMs + stopWatchdogSlackMs);
  timer.unref();
}

function readiness(stamp: EmbeddedStamp | null): Readiness {
  return stamp === null ? { ready: false, reason: 'starting: replaying journals and commit logs' } : { ready: true, reason: 'serving' };
}
