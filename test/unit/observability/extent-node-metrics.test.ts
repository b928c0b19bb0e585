// ExtentNodeMetrics fed by the stream layer's diagnostics channels: first from hand-made events
// (every counter and histogram moves as docs/metrics.md says), then from real ExtentNodes on
// SimDisk + SimNetwork + ManualClock: appends and reads counted by role and status, a bit flipped
// in a replica counted as corruption when a read touches it, logged with extentId, offset, reason
// and nodeId and without data bytes, and a block damaged while the node was down counted by the
// store's recovery at start (before the node existed). Figures are printed with t.diagnostic().
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { extentSyncIntervalMs, journalBatchesInFlightMax } from '../../../src/constants.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { ExtentNodeMetrics } from '../../../src/observability/extent-node-metrics.ts';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import { ExtentNode } from '../../../src/stream/extent-node.ts';
import { StreamClient } from '../../../src/stream/stream-client.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { streamEvents } from '../../../src/util/stream-events.ts';
import { FakeStreamManager } from '../../helpers/fake-stream-manager.ts';

const seed = BigInt(process.env['KURA_SEED'] ?? '20250701');
/** Extent header (64 bytes), then the first block record: its header (40), then its body. */
const firstBlockPosition = 64;
const firstBodyPosition = firstBlockPosition + 40;

/** The value of one series; histograms by their _count. Absent series read as null. */
async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number | null> {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric !== undefined, `metric ${name} is registered`);
  const data = await metric.get();
  const wanted = data.type.toString() === 'histogram' || name.endsWith('_seconds') ? `${name}_count` : name;
  const match = data.values.find((value) => {
    const metricName = (value as { metricName?: string }).metricName ?? name;
    return metricName === wanted && Object.entries(labels).every(([key, expected]) => String(value.labels[key]) === expected);
  });
  return match === undefined ? null : match.value;
}

class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    for (const line of chunk.toString('utf8').split('\n').filter((l) => l !== '')) {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    callback();
  }
}

class Harness {
  readonly clock = new ManualClock(0);
  readonly random = new SeededRandom(seed);
  readonly network = new SimNetwork({ clock: this.clock, random: this.random, faults: { delayMsMin: 0, delayMsMax: 1 }, localAddress: 'client:1' });
  readonly manager = new FakeStreamManager({ network: this.network.endpoint('sm:1') });
  readonly client = new StreamClient({ manager: this.manager, network: this.network, clock: this.clock, clientId: 'metrics-client' });
  readonly registry = new Registry();
  readonly metrics = new ExtentNodeMetrics({ registry: this.registry });
  readonly logs = new LogCapture();
  readonly logger = pino({ level: 'info' }, this.logs);
  readonly disks = new Map<string, SimDisk>();
  readonly nodes = new Map<string, ExtentNode>();

  async drive<T>(promise: Promise<T>, stepsMax = 200_000): Promise<T> {
    let done = false;
    promise.then(() => { done = true; }, () => { done = true; });
    for (let steps = 0; !done && steps < stepsMax; steps++) await this.clock.advance(1);
    assert.ok(done, `promise did not settle within ${stepsMax} ms of virtual time`);
    return promise;
  }

  async startNode(nodeId: string): Promise<ExtentNode> {
    const disk = this.disks.get(nodeId) ?? new SimDisk({ random: this.random, name: `sim:${nodeId}` });
    this.disks.set(nodeId, disk);
    const node = await this.drive(ExtentNode.start({
      nodeId, disk, clock: this.clock, random: this.random, network: this.network.endpoint(`${nodeId}:1`), listenAddress: `${nodeId}:1`,
      manager: this.manager, faultDomain: `fd-${nodeId}`, upgradeDomain: `ud-${nodeId}`, groupCommit: true, heartbeatIntervalMs: 500, logger: this.logger,
    }));
    this.nodes.set(nodeId, node);
    this.metrics.watch(node);
    return node;
  }

  async stopNode(nodeId: string): Promise<void> {
    const node = this.nodes.get(nodeId);
    if (node !== undefined) await this.drive(node.stop());
    this.nodes.delete(nodeId);
  }

  /** Flips one bit of the extent's file on `nodeId`'s disk at `position`. */
  flipBitAt(nodeId: string, extentId: number, position: number): string {
    const disk = this.disks.get(nodeId);
    assert.ok(disk !== undefined);
    const marker = extentId.toString(16).padStart(16, '0');
    const path = [...disk.snapshotFiles('live').keys()].find((candidate) => candidate.startsWith('extents/') && candidate.includes(marker));
    assert.ok(path !== undefined, `extent ${extentId} has a file on ${nodeId}`);
    disk.flipBit(path, position, 2);
    return path;
  }

  async close(): Promise<void> {
    for (const nodeId of [...this.nodes.keys()]) await this.stopNode(nodeId);
    this.metrics.close();
    await this.network.close();
  }
}

function record(sequence: number, bytes: number): Buffer {
  const data = Buffer.alloc(bytes, 0x41 + (sequence % 26));
  data.write(`secret-payload:${sequence}:`, 0, 'utf8');
  return data;
}

describe('ExtentNodeMetrics from diagnostics channel events', () => {
  it('updates counters and histograms from published events, and stops on close', async (t) => {
    const registry = new Registry();
    const metrics = new ExtentNodeMetrics({ registry });
    assert.ok(streamEvents.extentAppend.hasSubscribers);
    streamEvents.extentAppend.publish({ nodeId: 'n1', extentId: 1, role: 'primary', bytes: 1000, durationMs: 3, status: 'ok' });
    streamEvents.extentAppend.publish({ nodeId: 'n1', extentId: 1, role: 'secondary', bytes: 500, durationMs: 2, status: 'ok' });
    streamEvents.extentAppend.publish({ nodeId: 'n1', extentId: 1, role: 'primary', bytes: 700, durationMs: 9000, status: 'rpc.timeout' });
    streamEvents.extentRead.publish({ nodeId: 'n1', extentId: 1, bytes: 4096, durationMs: 1, status: 'ok' });
    streamEvents.extentRead.publish({ nodeId: 'n1', extentId: 1, bytes: 4096, durationMs: 1, status: 'extent.corrupt' });
    streamEvents.extentCorruption.publish({ nodeId: 'n1', extentId: 1, offset: 0, reason: 'block CRC or header mismatch' });
    streamEvents.extentSeal.publish({ nodeId: 'n1', extentId: 1, sealedLength: 1500, truncatedBytes: 700 });
    streamEvents.extentCopy.publish({ nodeId: 'n2', extentId: 1, bytes: 1500, durationMs: 40, status: 'ok' });
    streamEvents.extentCopy.publish({ nodeId: 'n2', extentId: 2, bytes: 0, durationMs: 40, status: 'stream.unavailable' });
    const expected: [string, Record<string, string>, number][] = [
      ['kura_extent_append_bytes_total', { node: 'n1', role: 'primary' }, 1000],
      ['kura_extent_append_bytes_total', { node: 'n1', role: 'secondary' }, 500],
      ['kura_extent_append_seconds', { node: 'n1', role: 'primary', status: 'ok' }, 1],
      ['kura_extent_append_seconds', { node: 'n1', role: 'primary', status: 'rpc.timeout' }, 1],
      ['kura_extent_read_bytes_total', { node: 'n1' }, 4096],
      ['kura_extent_read_seconds', { node: 'n1', status: 'extent.corrupt' }, 1],
      ['kura_extent_corruption_total', { node: 'n1' }, 1],
      ['kura_extent_seal_total', { node: 'n1' }, 1],
      ['kura_extent_seal_truncated_bytes_total', { node: 'n1' }, 700],
      ['kura_rereplication_bytes_total', { node: 'n2' }, 1500],
      ['kura_rereplication_copies_total', { node: 'n2', status: 'stream.unavailable' }, 1],
    ];
    for (const [name, labels, value] of expected) assert.equal(await metricValue(registry, name, labels), value, `${name}${JSON.stringify(labels)}`);
    const text = await registry.metrics();
    assert.match(text, /kura_extent_append_seconds_bucket\{le="10",node="n1",role="primary",status="rpc.timeout"\} 1/);
    metrics.close();
    streamEvents.extentCorruption.publish({ nodeId: 'n1', extentId: 1, offset: 0, reason: 'after close' });
    assert.equal(await metricValue(registry, 'kura_extent_corruption_total', { node: 'n1' }), 1, 'no counting after close');
    assert.equal(streamEvents.extentCorruption.hasSubscribers, false, 'no subscriber left: publishing is a boolean check again');
    t.diagnostic(`${expected.length} series checked after 9 events; 0 counted after close`);
  });
});

describe('ExtentNodeMetrics on real extent nodes (SimDisk, SimNetwork)', () => {
  it('counts appends and reads, and a flipped bit as corruption when a read touches it (logged without data)', async (t) => {
    await withHarness(t, async (h) => {
      for (const nodeId of ['en1', 'en2', 'en3']) await h.startNode(nodeId);
      assert.equal(await metricValue(h.registry, 'kura_extent_corruption_total', { node: 'en1' }), 0, 'the error counter exists at 0');
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      const acks = [];
      for (let i = 0; i < 8; i++) acks.push(await h.drive(h.client.append(stream.streamId, record(i, 4096))));
      const extent = (await h.drive(h.manager.getStream(stream.streamId))).extents[0];
      assert.ok(extent !== undefined);
      const [primary, secondary] = extent.replicas.map((replica) => replica.nodeId);
      assert.ok(primary !== undefined && secondary !== undefined);
      assert.equal(await metricValue(h.registry, 'kura_extent_append_bytes_total', { node: primary, role: 'primary' }), 8 * 4096);
      assert.equal(await metricValue(h.registry, 'kura_extent_append_bytes_total', { node: secondary, role: 'secondary' }), 8 * 4096);
      assert.equal(await metricValue(h.registry, 'kura_extent_append_seconds', { node: primary, role: 'primary', status: 'ok' }), 8);
      await h.drive(h.clock.sleep(1000)); // the store writes the journaled blocks into the extent file
      h.flipBitAt(secondary, extent.extentId, firstBodyPosition + 7);
      const read = h.network.call(`${secondary}:1`, { method: 'extent.read', header: { extentId: extent.extentId, offset: 0, length: 4096 }, body: Buffer.alloc(0) }, { deadlineMs: 5000 });
      await assert.rejects(h.drive(read), (error: unknown) => isStorageError(error, 'extent.corrupt'));
      const good = h.network.call(`${secondary}:1`, { method: 'extent.read', header: { extentId: extent.extentId, offset: 4096, length: 4096 }, body: Buffer.alloc(0) }, { deadlineMs: 5000 });
      await h.drive(good);
      // The same good block again: served by the read cache (its CRC re-checked).
      await h.drive(h.network.call(`${secondary}:1`, { method: 'extent.read', header: { extentId: extent.extentId, offset: 4096, length: 4096 }, body: Buffer.alloc(0) }, { deadlineMs: 5000 }));
      assert.equal(await metricValue(h.registry, 'kura_extent_read_cache_reads_total', { node: secondary, result: 'hit' }), 1);
      assert.equal(await metricValue(h.registry, 'kura_extent_read_cache_reads_total', { node: secondary, result: 'miss' }), 2);
      assert.equal(await metricValue(h.registry, 'kura_extent_read_cache_reads_total', { node: secondary, result: 'recheck_failed' }), 0);
      assert.equal(await metricValue(h.registry, 'kura_extent_read_cache_bytes', { node: secondary }), 4096, 'only the good block is cached');
      assert.equal(await metricValue(h.registry, 'kura_extent_corruption_total', { node: secondary }), 1);
      assert.equal(await metricValue(h.registry, 'kura_extent_corruption_total', { node: primary }), 0);
      assert.equal(await metricValue(h.registry, 'kura_extent_read_seconds', { node: secondary, status: 'extent.corrupt' }), 1);
      assert.equal(await metricValue(h.registry, 'kura_extent_read_bytes_total', { node: secondary }), 2 * 4096);
      const logged = h.logs.lines.filter((line) => line['msg'] === 'corrupt block found in a local replica; reporting it');
      assert.equal(logged.length, 1);
      assert.deepEqual(
        { extentId: logged[0]?.['extentId'], offset: logged[0]?.['offset'], nodeId: logged[0]?.['nodeId'], reason: typeof logged[0]?.['reason'] },
        { extentId: extent.extentId, offset: 0, nodeId: secondary, reason: 'string' },
      );
      const leaked = h.logs.raw.filter((line) => line.includes('secret-payload') || line.includes(record(0, 4096).subarray(0, 24).toString('base64')));
      assert.equal(leaked.length, 0, 'no log line carries data bytes');
      t.diagnostic(`8 appends of 4096 B: ${primary} primary ${8 * 4096} B, ${secondary} secondary ${8 * 4096} B; 1 bit flipped on ${secondary}: corruption_total 1, read status extent.corrupt 1, ${logged.length} log line, ${leaked.length} log lines with data bytes of ${h.logs.raw.length}`);
    });
  });

  it('counts a block damaged while the node was down, found by the store recovery at start', async (t) => {
    await withHarness(t, async (h) => {
      for (const nodeId of ['en1', 'en2', 'en3']) await h.startNode(nodeId);
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      for (let i = 0; i < 4; i++) await h.drive(h.client.append(stream.streamId, record(i, 2048)));
      const extent = (await h.drive(h.manager.getStream(stream.streamId))).extents[0];
      const victim = extent?.replicas[2]?.nodeId;
      assert.ok(extent !== undefined && victim !== undefined);
      await h.stopNode(victim); // close syncs the extent file and retires the journal
      // Recovery checks record headers (bodies are checked on every read): damage the first one;
      // the sound headers after it keep it indexed as a corrupt block rather than a torn tail.
      h.flipBitAt(victim, extent.extentId, firstBlockPosition + 25);
      const before = await metricValue(h.registry, 'kura_extent_corruption_total', { node: victim });
      await h.startNode(victim);
      const after = await metricValue(h.registry, 'kura_extent_corruption_total', { node: victim });
      const recovered = await metricValue(h.registry, 'kura_extent_recovery_corrupt_blocks', { node: victim });
      assert.equal((after ?? 0) - (before ?? 0), 1, 'the damage found during open is counted');
      assert.equal(recovered, 1);
      await h.drive(h.clock.sleep(100));
      const reported = h.manager.corruptionReports.filter((report) => report.nodeId === victim && report.extentId === extent.extentId);
      assert.equal(reported.length, 1, 'reported to the manager');
      const logged = h.logs.lines.filter((line) => line['msg'] === 'corrupt block found in a local replica; reporting it' && line['nodeId'] === victim);
      assert.equal(logged.length, 1, 'logged once, with the node id');
      t.diagnostic(`1 bit flipped on stopped ${victim}: recovery found ${recovered} corrupt block, corruption_total ${before} → ${after}, reports to the manager ${h.manager.corruptionReports.length}`);
    });
  });
});

describe('ExtentNodeMetrics: disk failure and damaged replicas', () => {
  it('reads kura_extent_node_failed 1 and /readyz false when a background extent sync fails, before any request', async (t) => {
    await withHarness(t, async (h) => {
      for (const nodeId of ['en1', 'en2', 'en3']) await h.startNode(nodeId);
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      const disk = h.disks.get('en2');
      assert.ok(disk !== undefined);
      disk.failNext({ operation: 'sync', path: (await disk.list('extents')).map((name) => `extents/${name}`)[0] ?? '', code: 'io.eio' });
      await h.drive(h.client.append(stream.streamId, record(0, 1024)));
      assert.equal(await metricValue(h.registry, 'kura_extent_node_failed', { node: 'en2' }), 0, 'the append was acknowledged from the journal');
      await h.drive(h.clock.sleep(extentSyncIntervalMs + 100)); // the background extent sync runs and fails; no request follows
      assert.equal(await metricValue(h.registry, 'kura_extent_node_failed', { node: 'en2' }), 1);
      assert.equal(await metricValue(h.registry, 'kura_extent_node_ready', { node: 'en2' }), 0);
      assert.equal(h.nodes.get('en2')?.ready, false);
      const logged = h.logs.lines.filter((line) => line['msg'] === 'local disk failed; reporting failed to the manager' && line['nodeId'] === 'en2');
      assert.equal(logged.length, 1);
      t.diagnostic('background extent sync failed on en2: kura_extent_node_failed 0 → 1 and ready 1 → 0 with no request in flight');
    });
  });

  it('counts a replica damaged by journal rot as damaged, and reports it to the manager at every start', async (t) => {
    await withHarness(t, async (h) => {
      for (const nodeId of ['en1', 'en2', 'en3']) await h.startNode(nodeId);
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      // D appends after the rotted one, so it lies before the journal's last in-flight window (else: a torn window, docs/formats/journal.md).
      for (let i = 0; i < 1 + journalBatchesInFlightMax; i++) await h.drive(h.client.append(stream.streamId, record(i, 1024)));
      const extentId = stream.extents[0]?.extentId ?? -1;
      const disk = h.disks.get('en3');
      assert.ok(disk !== undefined);
      disk.crash(); // the extent file was never synced
      await h.drive(h.nodes.get('en3')!.stop()).catch(() => undefined);
      h.nodes.delete('en3');
      disk.flipBit((await disk.list('journal')).map((name) => `journal/${name}`)[0] ?? '', 40 + 7, 1); // body of the first record
      for (let start = 0; start < 2; start++) {
        await h.stopNode('en3');
        await h.startNode('en3');
        await h.drive(h.clock.sleep(100));
      }
      assert.equal(await metricValue(h.registry, 'kura_extent_node_damaged_extents', { node: 'en3' }), 1);
      assert.equal(await metricValue(h.registry, 'kura_extent_node_failed', { node: 'en3' }), 0);
      const reports = h.manager.corruptionReports.filter((report) => report.nodeId === 'en3' && report.extentId === extentId);
      assert.equal(reports.length, journalBatchesInFlightMax + 2, 'the later records\' gaps (first start), then the damage at each of two starts');
      t.diagnostic(`journal rot on en3: kura_extent_node_damaged_extents 1, reported ${reports.length} times (${journalBatchesInFlightMax} gaps at the first start, the damage at both starts), node not failed`);
    });
  });
});

async function withHarness(t: TestContext, body: (harness: Harness) => Promise<void>): Promise<void> {
  t.diagnostic(`seed ${seed}`);
  const harness = new Harness();
  try {
    await body(harness);
  } finally {
    await harness.close();
  }
}
