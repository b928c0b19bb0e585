// Peer process handling: a server that exits before listening is reported unavailable with
// its own last message (how `kura serve` is detected before it is built), and the Kura peer
// either starts and stops cleanly or is reported unavailable — never a crash or fake numbers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { ChildServer } from '../../../bench/blob/child-server.ts';
import { freeLoopbackPort } from '../../../bench/blob/free-port.ts';
import { PeerUnavailableError } from '../../../bench/blob/peer.ts';
import { kuraServePeer } from '../../../bench/blob/peers.ts';
import { blobProfiles, parseProfileName } from '../../../bench/blob/profiles.ts';
import { workloadSpecs } from '../../../bench/blob/workloads.ts';

describe('blob benchmark peers', () => {
  it('reports a server that exits before listening as unavailable, with its message', async () => {
    const server = new ChildServer({
      command: process.execPath,
      args: ['-e', "process.stderr.write('kura serve: the blob service is not built yet\\n'); process.exit(2)"],
      port: await freeLoopbackPort(),
      cwd: tmpdir(),
      readyTimeoutMs: 10_000,
    });
    await assert.rejects(server.start(), (error: unknown) => error instanceof PeerUnavailableError && /code 2: kura serve: the blob service is not built yet/.test(error.reason));
  });

  it('runs kura serve, or reports it unavailable in this build', async () => {
    const peer = kuraServePeer(1);
    try {
      const endpoint = await peer.start();
      assert.ok(endpoint.pid > 0);
      assert.ok(peer.sample().rssBytes > 0);
    } catch (error) {
      assert.ok(error instanceof PeerUnavailableError, String(error));
      assert.ok(error.reason.length > 0);
    } finally {
      await peer.stop();
    }
  });

  it('bounds every profile and covers the issue-5 workload matrix', () => {
    assert.equal(parseProfileName(undefined), 'quick');
    assert.throws(() => parseProfileName('huge'));
    for (const profile of Object.values(blobProfiles)) {
      assert.ok(profile.durationMs > 0 && profile.operationsMax > 0 && profile.workloadBytesMax > 0 && profile.longOperationMs > 0);
      const specs = workloadSpecs(profile);
      const sdkPuts = specs.filter((spec) => spec.kind === 'put' && spec.client === 'sdk');
      assert.equal(sdkPuts.length, 9);
      assert.ok(['big', 'list', 'mixed'].every((kind) => specs.some((spec) => spec.kind === kind)));
    }
    assert.equal(blobProfiles.full.listBlobCount, 100_000);
    assert.equal(blobProfiles.full.bigBlobBytes, 256 << 20);
  });
});
