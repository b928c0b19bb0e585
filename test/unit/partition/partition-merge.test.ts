// Merges of cold neighbours (docs/partition-protocol.md, "Merges") on a simulated stamp with the
// real stream layer: a partition split into several pieces is merged back while writers stream
// unique conditional puts and a lister pages through the table; the owner is killed, or cut off
// from the MetaStore, in the middle of a merge; and a merge whose map txn never comes (prepared by
// hand, the manager never commits it) leaves only garbage. Counted every time: acknowledged
// writes lost (0), acknowledgements by a partition after the map retired it (0), rows listed
// twice or skipped by a listing that spans merges (0), ETags changed by a merge (0).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mergeAnswerSchema } from '../../../src/partition/partition-merge.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { key, MapWatch, PartitionCluster, text, valueOf } from '../../helpers/partition-cluster.ts';

const mergeEverything = { splitBytes: Number.MAX_SAFE_INTEGER, policy: { mergeBytes: 1 << 20, coldRequestsPerSecond: 1e9, mergeServedMsMin: 0 } };

/** Writes 80 rows into a one-server cluster that splits at 4 KiB, until it holds ≥ 3 partitions. */
async function splitCluster(seed: number, servers: readonly string[]): Promise<{ cluster: PartitionCluster; etags: Map<string, string>; maxSequence: number }> {
  const cluster = await PartitionCluster.start({ seed, servers: servers.slice(0, 1), splitBytes: 4 * 1024 });
  await cluster.until(() => cluster.allServed());
  const etags = new Map<string, string>();
  let maxSequence = 0;
  for (let i = 0; i < 80; i++) {
    const name = `row-${String(i).padStart(3, '0')}`;
    const put = await cluster.stamp.drive(cluster.client.put(key(name), text('x'.repeat(100))));
    etags.set(name, put.etag);
    maxSequence = Math.max(maxSequence, put.sequence);
  }
  await cluster.until(async () => (await cluster.map()).partitions.length >= 3 && (await cluster.allServed()), 120_000);
  for (const serverId of servers.slice(1)) await cluster.addServer(serverId);
  return { cluster, etags, maxSequence };
}

/** Writers of unique conditional puts; the map's retirements, to judge late acknowledgements. */
class Workload {
  readonly acknowledged = new Set<string>();
  indeterminate = 0;
  foundOnRetry = 0;
  private stop = false;
  private readonly running: Promise<void>[] = [];
  private readonly cluster: PartitionCluster;
  readonly watch: MapWatch;

  constructor(cluster: PartitionCluster, writerCount: number) {
    this.cluster = cluster;
    this.watch = new MapWatch(cluster);
    for (let writerId = 0; writerId < writerCount; writerId++) this.running.push(this.writer(writerId));
  }

  private async writer(writerId: number): Promise<void> {
    const { client, stamp } = this.cluster;
    for (let sequence = 0; !this.stop; sequence++) {
      const name = `w${writerId}-${String(sequence).padStart(5, '0')}`;
      for (let attempt = 0; attempt < 40 && !this.stop; attempt++) {
        try {
          await client.put(key(name), text(name), { ifNoneMatch: '*' });
          this.acknowledged.add(name);
          break;
        } catch (error) {
          if (isStorageError(error, 'partition.exists')) {
            this.foundOnRetry += 1; // an earlier, unacknowledged attempt was applied, once
            break;
          }
          this.indeterminate += 1;
          await stamp.clock.sleep(50);
        }
      }
      await stamp.clock.sleep(5);
    }
  }

  observe(): Promise<void> {
    return this.watch.observe();
  }

  async finish(): Promise<void> {
    this.stop = true;
    await this.cluster.stamp.drive(Promise.all(this.running));
  }

  lateAcknowledgements(): number {
    return this.watch.lateAcknowledgements();
  }

  async lost(): Promise<number> {
    let lost = 0;
    for (const name of this.acknowledged) if (valueOf(await this.cluster.stamp.drive(this.cluster.client.get(key(name)))) !== name) lost += 1;
    return lost;
  }
}

describe('merges of cold neighbours', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('merges split pieces back into one partition under writes and a listing; rows, ETags and sequences intact', async () => {
    const { cluster, etags, maxSequence } = await splitCluster(31, ['ps-a']);
    clusters.push(cluster);
    const { stamp, client } = cluster;
    const piecesBefore = (await cluster.map()).partitions.length;
    await cluster.replaceManager(mergeEverything);
    const workload = new Workload(cluster, 3);
    const listings: string[][] = [];
    let listing: string[] = [];
    let listingStartVersion = (await cluster.map()).version;
    let listingsSpanningMerges = 0;
    let continuation: string | undefined;
    const listed = (async (): Promise<void> => {
      // Pages of 7 rows, 20 ms apart: listings in progress while pieces merge.
      while (listings.length < 200) {
        const page = await client.scan({ prefix: key('row-'), limit: 7, ...(continuation === undefined ? {} : { continuation }) });
        listing.push(...page.items.map((item) => (item.kind === 'row' ? item.row.key.toString() : '')));
        continuation = page.continuation ?? undefined;
        if (continuation === undefined) {
          listings.push(listing);
          listing = [];
          const version = (await cluster.map()).version;
          if (version !== listingStartVersion) listingsSpanningMerges += 1;
          listingStartVersion = version;
          if ((await cluster.map()).partitions.length === 1 && listings.length >= 3) return;
        }
        await stamp.clock.sleep(20);
      }
    })();
    const mergeMs = await cluster.until(async () => {
      await workload.observe();
      return (await cluster.map()).partitions.length === 1 && (await cluster.allServed());
    }, 120_000);
    await stamp.drive(listed);
    await workload.finish();
    const expected = [...etags.keys()];
    const wrongListings = listings.filter((names) => names.join() !== expected.join()).length;
    let etagsChanged = 0;
    for (const [name, etag] of etags) if ((await stamp.drive(client.get(key(name))))?.etag !== etag) etagsChanged += 1;
    const after = await stamp.drive(client.put(key('row-000'), text('after the merges')));
    const lost = await workload.lost();
    const late = workload.lateAcknowledgements();
    const stats = cluster.manager.stats();
    console.log(
      `${piecesBefore} partitions → 1 in ${mergeMs} virtual ms (${stats.merges} merges, ${stats.moves} moves); ${workload.acknowledged.size} writes acknowledged meanwhile, ${lost} lost, ` +
      `${late} acknowledged by a retired partition, ${workload.indeterminate} indeterminate attempts (${workload.foundOnRetry} found applied on retry); ` +
      `${listings.length} listings of ${expected.length} rows (${listingsSpanningMerges} spanning a map change), ${wrongListings} wrong; ${etagsChanged} ETags changed; next sequence ${after.sequence} > ${maxSequence}`,
    );
    assert.ok(stats.merges >= piecesBefore - 1);
    assert.equal(lost, 0);
    assert.equal(late, 0);
    assert.equal(wrongListings, 0);
    assert.ok(listingsSpanningMerges >= 1, 'a listing was in progress while pieces merged');
    assert.equal(etagsChanged, 0);
    assert.ok(after.sequence > maxSequence, 'the merged partition continues above both parents’ sequences');
    assert.ok(workload.acknowledged.size > 20, 'writers made progress through the merges');
  });

  for (const fault of ['killed', 'cut off from the MetaStore'] as const) {
    it(`the owner ${fault} mid-merge: the pieces move to the survivor; 0 lost, 0 late acknowledgements`, async () => {
      const { cluster, etags } = await splitCluster(fault === 'killed' ? 32 : 33, ['ps-a', 'ps-b']);
      clusters.push(cluster);
      const { stamp, client } = cluster;
      await cluster.replaceManager(mergeEverything);
      const workload = new Workload(cluster, 3);
      const owner = cluster.server('ps-a');
      await cluster.until(async () => {
        await workload.observe();
        return [...owner.heldStates().values()].includes('merged');
      }, 120_000);
      const mergesBefore = cluster.manager.stats().merges;
      const faultAtMs = stamp.clock.monotonicMs();
      if (fault === 'killed') await stamp.drive(owner.crash());
      else owner.freezeLease();
      const recoveryMs = await cluster.until(async () => {
        await workload.observe();
        const map = await cluster.map();
        return map.partitions.every((entry) => entry.owner?.serverId === 'ps-b') && (await cluster.allServed());
      }, 120_000);
      await stamp.step(500);
      await workload.finish();
      const lost = await workload.lost();
      let rowsLost = 0;
      for (const [name, etag] of etags) if ((await stamp.drive(client.get(key(name))))?.etag !== etag) rowsLost += 1;
      const late = workload.lateAcknowledgements();
      const acksByAAfterFault = cluster.acknowledged.filter((event) => event.serverId === 'ps-a' && event.atMs > faultAtMs + 2_000).length;
      console.log(
        `owner ${fault} mid-merge (${mergesBefore} merges committed before): all partitions on ps-b ${recoveryMs} virtual ms later, ${(await cluster.map()).partitions.length} partitions; ` +
        `${workload.acknowledged.size} acknowledged, ${lost} lost, ${rowsLost} of ${etags.size} rows changed; ${late} acknowledged by a retired partition; ` +
        `${acksByAAfterFault} acks by ps-a after its lease ran out; ${workload.indeterminate} indeterminate attempts (${workload.foundOnRetry} applied on retry)`,
      );
      assert.equal(lost, 0);
      assert.equal(rowsLost, 0);
      assert.equal(late, 0);
      assert.equal(acksByAAfterFault, 0);
    });
  }

  it('a merge prepared but never committed leaves only garbage: both pieces reopen at new epochs, intact', async () => {
    const { cluster, etags } = await splitCluster(34, ['ps-a']);
    clusters.push(cluster);
    const { stamp, client } = cluster;
    await cluster.replaceManager({ splitBytes: Number.MAX_SAFE_INTEGER, policy: { mergeBytes: 0 } });
    const before = await cluster.map();
    const [left, right] = before.partitions;
    assert.ok(left !== undefined && right !== undefined);
    const response = await stamp.drive(stamp.network.endpoint('pm-x:1').call('ps-a:1', {
      method: 'partition.merge', body: Buffer.alloc(0),
      header: { left: { partitionId: left.partitionId, ownerEpoch: left.ownerEpoch }, right: { partitionId: right.partitionId, ownerEpoch: right.ownerEpoch }, mergedId: before.nextPartitionId },
    }));
    const answer = mergeAnswerSchema.parse(JSON.parse(response.body.toString('utf8')));
    const reopenedMs = await cluster.until(async () => {
      const map = await cluster.map();
      const epochOf = (partitionId: number): number => map.partitions.find((entry) => entry.partitionId === partitionId)?.ownerEpoch ?? 0;
      return epochOf(left.partitionId) > left.ownerEpoch && epochOf(right.partitionId) > right.ownerEpoch && (await cluster.allServed());
    });
    const after = await cluster.map();
    const referenced = new Set(after.partitions.flatMap((entry) => [...Object.values(entry.streams), ...entry.inheritedData]));
    const garbage = Object.values(answer.streams);
    let wrong = 0;
    for (const [name, etag] of etags) if ((await stamp.drive(client.get(key(name))))?.etag !== etag) wrong += 1;
    console.log(
      `merge of ${left.partitionId}+${right.partitionId} prepared (${answer.rows} rows) and never committed: both reopened at new epochs ${reopenedMs} virtual ms later ` +
      `(${cluster.manager.stats().reEpochs} re-epochs); ${after.partitions.length} partitions as before; merged streams ${garbage.join(',')} referenced by the map: ${garbage.filter((id) => referenced.has(id)).length}; ${wrong} rows wrong`,
    );
    assert.equal(after.partitions.length, before.partitions.length);
    assert.equal(garbage.filter((id) => referenced.has(id)).length, 0);
    assert.equal(wrong, 0);
    assert.equal(answer.rows > 0, true);
  });
});
