// Partition servers, manager and client on a simulated stamp (real stream layer on SimDisk,
// SimNetwork, virtual clock): bootstrap and assignment, routing and every RPC, not_owner from a
// server that does not own the key, failover after a crash (acknowledged writes survive, takeover
// time and replayed log length reported), and a split of a partition that grew past its bound.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scanPageBytesMax } from '../../../src/constants.ts';
import { PartitionClient } from '../../../src/partition/partition-client.ts';
import { deleteRow, encodeKey, encodeRows, putRow } from '../../../src/partition/partition-rpc.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import type { Column } from '../../../src/wire/partition-row.ts';
import { key, PartitionCluster, text, valueOf } from '../../helpers/partition-cluster.ts';

describe('PartitionServer + PartitionManager + PartitionClient', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('bootstraps the map, assigns the partition, and serves every RPC through the client', async () => {
    const cluster = await PartitionCluster.start({ seed: 11, servers: ['ps-a', 'ps-b'] });
    clusters.push(cluster);
    await cluster.until(() => cluster.allServed());
    const { stamp, client } = cluster;
    const put = await stamp.drive(client.put(key('a/1'), text('one')));
    await stamp.drive(client.put(key('a/2'), text('two')));
    await stamp.drive(client.put(key('b/1'), text('three'), { ifNoneMatch: '*' }));
    assert.equal(valueOf(await stamp.drive(client.get(key('a/1')))), 'one');
    await assert.rejects(stamp.drive(client.put(key('a/1'), text('x'), { ifMatch: '0xBAD' })), (error) => isStorageError(error, 'partition.condition_failed'));
    const result = await stamp.drive(client.transact([
      { kind: 'put', key: key('a/1'), columns: text('uno'), ifMatch: put.etag },
      { kind: 'delete', key: key('a/2') },
    ]));
    assert.equal(result.etags.length, 2);
    assert.equal(await stamp.drive(client.get(key('a/2'))), null);
    // A check op: the batch applies only if the checked row is live with that ETag; it writes nothing.
    const checked = await stamp.drive(client.transact([{ kind: 'put', key: key('a/3'), columns: text('three'), ifNoneMatch: '*' }, { kind: 'check', key: key('a/1'), ifMatch: result.etags[0] ?? '' }]));
    assert.equal(checked.etags[1], null, 'a check gets no ETag');
    assert.equal((await stamp.drive(client.get(key('a/1'))))?.etag, result.etags[0], 'the checked row is unchanged');
    await assert.rejects(stamp.drive(client.transact([{ kind: 'put', key: key('a/4'), columns: text('four') }, { kind: 'check', key: key('a/1'), ifMatch: put.etag }])), (error) => isStorageError(error, 'partition.condition_failed'));
    await assert.rejects(stamp.drive(client.transact([{ kind: 'put', key: key('a/4'), columns: text('four') }, { kind: 'check', key: key('a/2'), ifMatch: '*' }])), (error) => isStorageError(error, 'partition.row_not_found'));
    await assert.rejects(stamp.drive(client.transact([{ kind: 'check', key: key('a/1'), ifMatch: '*' }])), (error) => isStorageError(error, 'config.invalid'), 'checks alone write nothing');
    assert.equal(await stamp.drive(client.get(key('a/4'))), null, 'a refused batch applied nothing');
    assert.equal(valueOf(await stamp.drive(client.get(key('a/3')))), 'three');
    const page = await stamp.drive(client.scan({ limit: 10, delimiter: key('/') }));
    assert.deepEqual(page.items.map((item) => (item.kind === 'prefix' ? item.prefix.toString() : item.row.key.toString())), ['a/', 'b/']);
    const ref = await stamp.drive(client.appendData(key('a/1'), Buffer.from('blob bytes')));
    assert.equal((await stamp.drive(client.readData(key('a/1'), ref))).toString(), 'blob bytes');
    await stamp.drive(client.delete(key('b/1')));
    assert.equal(await stamp.drive(client.get(key('b/1'))), null);
    // getMany: one call for keys of one partition (a deleted and a never-written key are null);
    // a row that would take the answer past its byte bound is read alone.
    const callsBefore = client.stats().requests;
    const many = await stamp.drive(client.getMany([key('a/1'), key('a/2'), key('b/1'), key('zz')]));
    assert.deepEqual(many.map(valueOf), ['uno', null, null, null]);
    assert.equal(client.stats().requests - callsBefore, 1, 'one partition call');
    // Rows before the last of up to 4 KiB travel in the answer's header, larger ones in the body.
    const sized = (bytes: number, fill: number): Column[] => [{ name: 'v', value: { kind: 'bytes', value: Buffer.alloc(bytes, fill) } }];
    await stamp.drive(client.put(key('mid/1'), sized(300, 3)));
    await stamp.drive(client.put(key('mid/2'), sized(10_000, 4)));
    await stamp.drive(client.put(key('mid/3'), sized(20_000, 5)));
    for (const names of [['mid/1', 'mid/3'], ['mid/2', 'mid/3'], ['mid/1', 'mid/2', 'mid/3'], ['mid/3', 'mid/1']]) {
      const rows = await stamp.drive(client.getMany(names.map(key)));
      assert.deepEqual(rows.map((row) => (row?.columns[0]?.value.kind === 'bytes' ? [row.columns[0].value.value.length, row.columns[0].value.value[0]] : null)), names.map((name) => ({ 'mid/1': [300, 3], 'mid/2': [10_000, 4], 'mid/3': [20_000, 5] })[name]));
    }
    const large = (fill: number): Column[] => [{ name: 'v', value: { kind: 'bytes', value: Buffer.alloc(Math.ceil(scanPageBytesMax * 0.6), fill) } }];
    await stamp.drive(client.put(key('big/1'), large(1)));
    await stamp.drive(client.put(key('big/2'), large(2)));
    const callsLarge = client.stats().requests;
    const bigRows = await stamp.drive(client.getMany([key('big/1'), key('big/2')]));
    assert.deepEqual(bigRows.map((row) => (row?.columns[0]?.value.kind === 'bytes' ? row.columns[0].value.value[0] : null)), [1, 2]);
    assert.equal(client.stats().requests - callsLarge, 2, 'the second row, past scanPageBytesMax with the first, is read alone');
    const map = await cluster.map();
    const owner = map.partitions[0]?.owner?.serverId;
    const other = owner === 'ps-a' ? 'ps-b' : 'ps-a';
    await assert.rejects(
      stamp.drive(stamp.network.endpoint('fe:2').call(`${other}:1`, { method: 'partition.get', header: { key: encodeKey(key('a/1')) }, body: Buffer.alloc(0) })),
      (error) => isStorageError(error, 'partition.not_owner'),
    );
    console.log(`map v${map.version}: partition 0 at epoch ${map.partitions[0]?.ownerEpoch} on ${owner}; client ${JSON.stringify(client.stats())}`);
  });

  it('serves what the map assigns as soon as its MetaStore watch reports the write, without polling', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 12, servers: ['ps-a', 'ps-b'], serverSettings: { mapRecheckMs: 60_000 } });
    clusters.push(cluster);
    const servedMs = await cluster.until(() => cluster.allServed(), 10_000);
    const { stamp, client } = cluster;
    await stamp.drive(client.put(key('a/1'), text('one')));
    const owner = (await cluster.map()).partitions[0]?.owner?.serverId ?? '';
    await stamp.drive(cluster.server(owner).crash());
    cluster.servers.delete(owner);
    const failoverMs = await cluster.until(() => cluster.allServed(), 30_000);
    t.diagnostic(`map re-read every 60 s besides its watch: served ${servedMs} ms (virtual) after the start, again ${failoverMs} ms after its server crashed (the lease's TTL)`);
    assert.ok(servedMs < 2_000, `served within 2 s, not at the next 60 s poll (${servedMs} ms)`);
    assert.equal(valueOf(await stamp.drive(client.get(key('a/1')))), 'one');
  });

  it('moves a crashed server’s partition: every acknowledged write survives the takeover', async () => {
    const cluster = await PartitionCluster.start({ seed: 12, servers: ['ps-a', 'ps-b'] });
    clusters.push(cluster);
    await cluster.until(() => cluster.allServed());
    const { stamp, client } = cluster;
    const acknowledged = new Map<string, string>();
    for (let i = 0; i < 120; i++) {
      const name = `k${String(i).padStart(4, '0')}`;
      await stamp.drive(client.put(key(name), text(`v${i}`)));
      acknowledged.set(name, `v${i}`);
    }
    const before = await cluster.map();
    const victim = before.partitions[0]?.owner?.serverId ?? '';
    const survivor = victim === 'ps-a' ? 'ps-b' : 'ps-a';
    const crashedAtMs = stamp.clock.monotonicMs();
    await stamp.drive(cluster.server(victim).crash());
    const takeoverMs = await cluster.until(async () => (await cluster.allServed()) && (await cluster.map()).partitions[0]?.owner?.serverId === survivor);
    let lost = 0;
    for (const [name, value] of acknowledged) if (valueOf(await stamp.drive(client.get(key(name)))) !== value) lost += 1;
    const load = cluster.server(survivor).stats().lastLoad;
    console.log(`${acknowledged.size} acknowledged, ${lost} lost; takeover ${takeoverMs} virtual ms after the crash at ${crashedAtMs} (lease 2000 ms), replayed ${load?.recordsReplayed} log records in ${load?.durationMs} ms`);
    assert.equal(lost, 0);
    assert.ok(((await cluster.map()).partitions[0]?.ownerEpoch ?? 0) >= 2);
  });

  it('splits a partition that grew past its bound; both halves serve, ETags and rows intact', async () => {
    const cluster = await PartitionCluster.start({ seed: 13, servers: ['ps-a'], splitBytes: 4 * 1024 });
    clusters.push(cluster);
    await cluster.until(() => cluster.allServed());
    const { stamp, client } = cluster;
    const etags = new Map<string, string>();
    const sequences = new Map<string, number>();
    for (let i = 0; i < 80; i++) {
      const name = `row-${String(i).padStart(3, '0')}`;
      const put = await stamp.drive(client.put(key(name), text('x'.repeat(100))));
      etags.set(name, put.etag);
      sequences.set(name, put.sequence);
    }
    await cluster.until(async () => (await cluster.map()).partitions.length >= 2 && (await cluster.allServed()), 120_000);
    const map = await cluster.map();
    let wrong = 0;
    for (const [name, etag] of etags) if ((await stamp.drive(client.get(key(name))))?.etag !== etag) wrong += 1;
    // getMany across the split: the first key's partition answers its keys, the others are read alone.
    const callsBefore = client.stats().requests;
    const names = ['row-001', 'row-079', 'row-002', 'row-999'];
    const many = await stamp.drive(client.getMany(names.map(key)));
    assert.deepEqual(many.map((row) => row?.etag ?? null), names.map((name) => etags.get(name) ?? null));
    const manyCalls = client.stats().requests - callsBefore;
    assert.ok(manyCalls >= 2 && manyCalls <= 3, `getMany across partitions took ${manyCalls} calls`);
    // A check of a row in the other partition cannot be checked there: refused, nothing applied.
    const lowHigh = map.partitions[0]?.high ?? '';
    const [left, right] = [...etags.keys()].reduce<[string[], string[]]>((sides, name) => { sides[Buffer.from(name).toString('hex') < lowHigh ? 0 : 1].push(name); return sides; }, [[], []]);
    const outside = await stamp.drive(client.transact([{ kind: 'put', key: key(`${left[0] ?? ''}-new`), columns: text('n') }, { kind: 'check', key: key(right[0] ?? ''), ifMatch: '*' }]).then(() => null, (error: unknown) => error));
    assert.ok(isStorageError(outside, 'partition.condition_failed'), `a check outside the partition: ${String(outside)}`);
    assert.equal(await stamp.drive(client.get(key(`${left[0] ?? ''}-new`))), null);
    const after = await stamp.drive(client.put(key('row-000'), text('after the split')));
    const leftHigh = map.partitions[0]?.high ?? '';
    const leftSequences = [...sequences].filter(([name]) => Buffer.from(name).toString('hex') < leftHigh).map(([, sequence]) => sequence);
    assert.ok(after.sequence > Math.max(...leftSequences), 'the child continues the parent’s sequence: its ETags never repeat one of its rows’');
    let scanned = 0;
    let continuation: string | undefined;
    do {
      const page = await stamp.drive(client.scan({ limit: 7, ...(continuation === undefined ? {} : { continuation }) }));
      scanned += page.items.length;
      continuation = page.continuation ?? undefined;
    } while (continuation !== undefined);
    console.log(`getMany of ${names.length} keys across the split: ${manyCalls} partition calls`);
    console.log(`split into ${map.partitions.length} partitions at ${map.partitions.map((entry) => entry.low).join(' | ')}; ${etags.size} rows, ${wrong} wrong after the split, ${scanned} scanned across partitions`);
    assert.equal(wrong, 0);
    assert.equal(scanned, etags.size);
  });

  it('refuses a hostile or malformed request without applying it', async () => {
    const cluster = await PartitionCluster.start({ seed: 14, servers: ['ps-a'] });
    clusters.push(cluster);
    await cluster.until(() => cluster.allServed());
    const call = (method: string, header: Record<string, string | number>, body = Buffer.alloc(0)): Promise<unknown> =>
      cluster.stamp.drive(cluster.stamp.network.endpoint('fe:3').call('ps-a:1', { method, header, body }));
    await assert.rejects(call('partition.nope', {}), (error) => isStorageError(error, 'config.invalid'));
    await assert.rejects(call('partition.put', { key: 'not base64!' }), (error) => isStorageError(error, 'config.invalid'));
    await assert.rejects(call('partition.put', { key: encodeKey(key('a')) }, Buffer.from([0, 0, 0, 9, 1])), (error) => isStorageError(error, 'config.invalid'));
    // A check that names no ETag (sent as a tombstone row, as the client sends a check).
    const checkCall = (ops: unknown): Promise<unknown> => cluster.stamp.drive(cluster.stamp.network.endpoint('fe:3').call('ps-a:1', { method: 'partition.transact', header: { key: encodeKey(key('a')), ops } as never, body: encodeRows([putRow(key('a'), text('x')), deleteRow(key('b'))]) }));
    await assert.rejects(checkCall([{ kind: 'put' }, { kind: 'check' }]), (error) => isStorageError(error, 'config.invalid'));
    await assert.rejects(checkCall([{ kind: 'put' }, { kind: 'check', ifMatch: '*', ifNoneMatch: '*' }]), (error) => isStorageError(error, 'config.invalid'));
    assert.equal(await cluster.stamp.drive(new PartitionClient({ metaStore: cluster.stamp.metaStore, network: cluster.stamp.network.endpoint('fe:4'), clock: cluster.stamp.clock }).get(key('a'))), null);
  });
});
