// The dev-cluster peer's pure parts: which pids of cluster.json make up the stamp (supervisor,
// which runs the balancer, and every role process, each once), how their samples add up, and
// which cells a cluster peer runs in the quick profile. Its real start, kill -9 of every process
// and restart are exercised by `npm run bench:blob -- --peers kura-cluster-1fe`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clusterPeerName, clusterPids, clusterProcesses, clusterWorkloads, devClusterPeer, isClusterPeer, sumSamples } from '../../../bench/blob/cluster-peer.ts';
import { checkPeerNames, peerSpecs } from '../../../bench/blob/blob-bench.ts';
import { blobProfiles } from '../../../bench/blob/profiles.ts';
import { readProcessSample } from '../../../bench/blob/proc-sample.ts';
import { specLabel, workloadSpecs } from '../../../bench/blob/workloads.ts';

describe('blob benchmark dev-cluster peer', () => {
  it('takes the supervisor and every process with a pid from cluster.json, each once', () => {
    const text = JSON.stringify({
      version: 1, supervisorPid: 100, phase: 'ready',
      processes: [
        { name: 'etcd1', role: 'etcd', pid: 101 }, { name: 'c1', role: 'controller', pid: 102 },
        { name: 'en1', role: 'extent-node', pid: null }, { name: 'balancer', role: 'balancer', pid: 100 },
      ],
    });
    assert.deepEqual(clusterPids(text), [100, 101, 102]);
    assert.deepEqual(clusterPids(JSON.stringify({ supervisorPid: null, processes: [] })), []);
  });

  it('names every process of cluster.json with its role and address, each pid once', () => {
    const text = JSON.stringify({
      processes: [
        { name: 'fe1', role: 'frontend', pid: 201, address: '127.0.0.1:21001' }, { name: 'en1', role: 'extent-node', pid: null, address: null },
        { name: 'balancer', role: 'balancer', pid: 200, address: '127.0.0.1:10000' }, { name: 'again', role: 'frontend', pid: 201, address: null },
      ],
    });
    assert.deepEqual(clusterProcesses(text), [
      { name: 'fe1', role: 'frontend', pid: 201, address: '127.0.0.1:21001' },
      { name: 'balancer', role: 'balancer', pid: 200, address: '127.0.0.1:10000' },
    ]);
  });

  it('goes through the balancer by default; the -direct peer addresses its front ends', () => {
    assert.equal(devClusterPeer(2).name, 'kura-cluster-2fe');
    assert.equal(devClusterPeer(2, { addressing: 'direct' }).name, 'kura-cluster-2fe-direct');
    checkPeerNames(['kura-cluster-2fe', 'kura-cluster-2fe-direct']);
    assert.throws(() => checkPeerNames(['kura-cluster-9fe-direct']), /unknown peer/);
  });

  it('sums CPU, resident and peak memory over the processes', () => {
    const own = readProcessSample(process.pid);
    const total = sumSamples([own, own, own]);
    assert.equal(total.cpuSeconds, 3 * own.cpuSeconds);
    assert.equal(total.rssBytes, 3 * own.rssBytes);
    assert.equal(total.peakRssBytes, 3 * own.peakRssBytes);
    assert.deepEqual(sumSamples([]), { cpuSeconds: 0, rssBytes: 0, peakRssBytes: 0 });
  });

  it('runs Put and Get Blob 64 KiB ×16 with the SDK only; other peers run every workload', () => {
    const specs = workloadSpecs(blobProfiles.quick);
    const cluster = peerSpecs(clusterPeerName(2), specs);
    assert.deepEqual(cluster.map((spec) => specLabel(spec, blobProfiles.quick)), ['put 64 KiB ×16', 'get 64 KiB ×16']);
    assert.ok(cluster.every(clusterWorkloads));
    assert.equal(peerSpecs('kura-3disk', specs).length, specs.length);
    assert.ok(isClusterPeer('kura-cluster-1fe') && !isClusterPeer('kura-3disk'));
  });
});
