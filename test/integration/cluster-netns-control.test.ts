// The control plane's hosts cut off (Linux network namespaces, test/helpers/netns.ts; docs/cluster.md,
// "A host cut off"): a 3-member etcd on three hosts, two controllers on two hosts, three extent
// nodes on three fault-domain hosts, a partition server and a front end on one host; 10 processes
// on 9 hosts. SDK writers and a reader in the root namespace work through the front end throughout.
//
// 1. The leading controller's host is cut off (no resets: its link is down, it keeps running). It
//    can no longer renew its lease: it must stop routing manager.* calls (its lease lapsed) before
//    the standby leads, both judged on the processes' own log times (one machine, one clock). The new
//    leader's stream manager takes a higher epoch; every extent node learns it and refuses a
//    command carrying the old leader's epoch (extent.stale_epoch, sent from the test). Healed: the
//    old leader comes back as a standby and never leads again in this term.
// 2. The host of etcd's Raft leader is cut off: the two members left keep a quorum and elect a
//    leader; the roles' etcd clients move to them. Writes go on. Healed: the member is healthy again.
// Figures: the step-down and takeover times, the longest gap between acknowledged writes after
// each cut, acknowledged writes lost (0) and corrupt reads (0).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdMetaStore } from '../../src/metastore/etcd-meta-store.ts';
import { TcpNetwork } from '../../src/rpc/tcp-network.ts';
import { readControllerLeader } from '../../src/stamp/cluster-controller.ts';
import { ManagerCommands } from '../../src/stream/manager-commands.ts';
import { isStorageError } from '../../src/util/errors.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { containerAt, readBack, startSteadyLoad } from '../helpers/blob-ledger.ts';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.ts';
import { NetnsLab } from '../helpers/netns.ts';
import { RoleProcess, adminGet, killAllRoles, until as untilWithin, type LaunchOptions } from '../helpers/role-process.ts';

const leaseTtlMs = 2_000;
const phaseTimeoutMs = 60_000;
const requestTimeoutMs = 5_000;
const acksPerPhaseMin = 20;
const hostNames = ['e1', 'e2', 'e3', 'ca', 'cb', 'fd1', 'fd2', 'fd3', 'ps'] as const;
type HostName = (typeof hostNames)[number];

const until = <T>(what: string, probe: () => T | null | Promise<T | null>): Promise<T> => untilWithin(what, probe, phaseTimeoutMs);

/** The pino fields of the first line with this msg logged at or after `sinceMs`, or null. */
function logged(role: RoleProcess, message: string, sinceMs: number): { time: number; epoch?: number } | null {
  for (const line of role.lines) {
    if (!line.includes(`"msg":"${message}"`)) continue;
    const fields = JSON.parse(line) as { time: number; epoch?: number };
    if (fields.time >= sinceMs) return fields;
  }
  return null;
}

/** The epoch of the last term this controller logged leading. */
function lastEpoch(role: RoleProcess): number {
  const lines = role.lines.filter((line) => line.includes('"msg":"controller leading"'));
  return (JSON.parse(lines.at(-1) ?? '{}') as { epoch?: number }).epoch ?? 0;
}

/** etcd's Raft leader: the member whose own id is the leader it reports. */
async function etcdLeader(endpoints: readonly string[]): Promise<number | null> {
  for (const [index, endpoint] of endpoints.entries()) {
    try {
      const response = await fetch(`${endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1_000) });
      const status = await response.json() as { header?: { member_id?: string }; leader?: string };
      if (status.leader !== undefined && status.header?.member_id === status.leader) return index;
    } catch {
      // Cut off or electing: ask the next.
    }
  }
  return null;
}

describe('cluster on 9 network-namespace hosts: the controller leader\'s and etcd leader\'s hosts cut off', () => {
  let lab: NetnsLab | null = null;
  let etcd: EtcdCluster | null = null;
  let root = '';
  after(async () => {
    await killAllRoles();
    await etcd?.stop();
    await lab?.destroy();
    if (root !== '') await rm(root, { recursive: true, force: true });
  });

  it('a cut-off leader steps down before the standby leads and its epoch is refused; an etcd member cut off; 0 lost, 0 corrupt', async (t) => {
    const startedMs = Date.now();
    lab = await NetnsLab.create(hostNames);
    const hosts = lab;
    const at = (host: HostName, port: number): string => `${hosts.host(host).address}:${port}`;
    root = await mkdtemp(join(tmpdir(), 'kura-netns-ctl-'));
    etcd = await startEtcd({ hosts: (['e1', 'e2', 'e3'] as const).map((name) => hosts.host(name)) });
    const endpoints = etcd.endpoints.join(',');
    const controllers = `${at('ca', 7000)},${at('cb', 7000)}`;
    const roles: RoleProcess[] = [];
    const launch = async (host: HostName, options: Omit<LaunchOptions, 'namespace'>): Promise<RoleProcess> => {
      const role = await RoleProcess.launch({ ...options, namespace: hosts.host(host).namespace });
      roles.push(role);
      return role;
    };
    /** Warnings and errors the roles logged since `sinceMs`, a few per role: why a phase went as it did. */
    const warnings = (sinceMs: number): string => roles.flatMap((role) => role.lines
      .filter((line) => line.startsWith('{') && (JSON.parse(line) as { level: number; time: number }).level >= 40 && (JSON.parse(line) as { time: number }).time >= sinceMs)
      .slice(0, 4).map((line) => {
        const fields = JSON.parse(line) as { time: number; msg: string; reason?: string; err?: { message?: string } };
        return `${role.name} +${((fields.time - sinceMs) / 1000).toFixed(2)} s ${fields.msg}${fields.reason === undefined ? '' : ` (${fields.reason})`}${fields.err?.message === undefined ? '' : `: ${fields.err.message.slice(0, 120)}`}`;
      })).join('\n');
    const controller = (host: 'ca' | 'cb', id: string, ready: string): Promise<RoleProcess> => launch(host, {
      name: id, ready, args: ['controller', '--etcd', endpoints, '--listen', at(host, 7000), '--controller-id', id, '--lease-ttl-ms', String(leaseTtlMs), '--tick-ms', '200'],
    });
    const first = await controller('ca', 'c1', 'controller leading');
    const second = await controller('cb', 'c2', 'controller standby');
    const nodeHosts = ['fd1', 'fd2', 'fd3'] as const;
    await Promise.all(nodeHosts.map((host, index) => launch(host, {
      name: `en${index + 1}`, ready: 'extent node listening',
      args: ['extent-node', '--disk', join(root, `en${index + 1}`), '--fault-domain', host, '--upgrade-domain', `ud${index + 1}`, '--listen', at(host, 7100), '--manager', controllers, '--node-id', `en${index + 1}`, '--admin', at(host, 9100)],
    })));
    await launch('ps', {
      name: 'ps1', ready: 'partition server listening',
      args: ['partition-server', '--etcd', endpoints, '--stream-manager', controllers, '--listen', at('ps', 7200), '--server-id', 'ps1', '--lease-ttl-ms', String(leaseTtlMs)],
    });
    await launch('ps', { name: 'fe1', ready: 'frontend listening', args: ['frontend', '--etcd', endpoints, '--listen', at('ps', 10000)] });
    t.diagnostic(`10 processes on 9 hosts ready in ${((Date.now() - startedMs) / 1000).toFixed(1)} s; c1 leads, c2 stands by`);

    // Steady load through the front end.
    const via = containerAt(at('ps', 10000), 'control');
    await via.create();
    const load = startSteadyLoad(via, { writers: 2, requestTimeoutMs });
    const { acks } = load;
    const acksAfter = (ms: number): number => acks.filter((ack) => ack.sentMs > ms).length;
    const longestGap = (fromMs: number, toMs: number): number => {
      const times = [fromMs, ...acks.map((ack) => ack.ackMs).filter((ms) => ms > fromMs && ms <= toMs).sort((a, b) => a - b), toMs];
      return Math.max(...times.map((ms, index) => ms - (times[index - 1] ?? ms)));
    };
    const network = new TcpNetwork({ clock: new SystemClock() });
    try {
      await until(`${acksPerPhaseMin} writes acknowledged before the first cut`, () => (acks.length >= acksPerPhaseMin ? true : null));

      // 1. The controller leader's host cut off (c1 led first; on a loaded machine a lease may
      // have lapsed since and c2 lead: the leader is read from etcd).
      const metaStore = await EtcdMetaStore.connect({ endpoints: etcd.endpoints });
      const leaderId = await until('a controller leads', async () => (await readControllerLeader(metaStore))?.controllerId ?? null);
      await metaStore.close();
      const [c1, c2, leaderHost] = leaderId === 'c1' ? [first, second, 'ca' as const] : [second, first, 'cb' as const];
      const oldEpoch = lastEpoch(c1);
      const cutMs = Date.now();
      await hosts.cut(leaderHost);
      // c1 routes a manager.* call only while its lease is confirmed valid (checked per call on its
      // clock); a timer at validUntil logs the loss, so that line's time is an upper bound of when it
      // stopped acting as leader. Its step-down (managers stopped, lease revoked) follows.
      const lost = await until('the cut-off leader\'s lease lapses', () => logged(c1, 'controller lease no longer confirmed valid', cutMs) ?? logged(c1, 'controller stepping down', cutMs));
      const steppedDown = await until('the cut-off leader steps down', () => logged(c1, 'controller stepping down', cutMs));
      const takeover = await until('the standby leads', () => logged(c2, 'controller leading', cutMs));
      const newEpoch = takeover.epoch ?? 0;
      t.diagnostic(`controller leader's host cut at 0 s: ${c1.name} stopped routing (lease lapsed) at +${((lost.time - cutMs) / 1000).toFixed(2)} s, stepped down at +${((steppedDown.time - cutMs) / 1000).toFixed(2)} s; ${c2.name} led at +${((takeover.time - cutMs) / 1000).toFixed(2)} s (lease TTL ${leaseTtlMs / 1000} s); stream manager epoch ${oldEpoch} -> ${newEpoch}`);
      assert.ok(lost.time < takeover.time, `${c1.name} stopped leading (+${lost.time - cutMs} ms) before ${c2.name} led (+${takeover.time - cutMs} ms)`);
      assert.ok(newEpoch > oldEpoch);
      const nodeEpochs = await until('every extent node has seen the new epoch', async () => {
        const epochs = await Promise.all(nodeHosts.map(async (host) => {
          const metrics = String((await adminGet(at(host, 9100), '/metrics')).body);
          return Number(/^kura_extent_node_epoch(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0);
        }));
        return epochs.every((epoch) => epoch >= newEpoch) ? epochs : null;
      });
      const fenced = await Promise.all(nodeHosts.map(async (host) => {
        try {
          await new ManagerCommands({ network, epoch: () => oldEpoch }).remove(at(host, 7100), 0xdead);
          return 'accepted';
        } catch (error) {
          return isStorageError(error, 'extent.stale_epoch') ? 'refused' : String(error);
        }
      }));
      t.diagnostic(`extent nodes' epochs ${nodeEpochs.join(', ')}; a command with the old epoch ${oldEpoch}: ${fenced.join(', ')}`);
      assert.deepEqual(fenced, ['refused', 'refused', 'refused']);
      await until(`${acksPerPhaseMin} writes acknowledged after the takeover`, () => (acksAfter(takeover.time) >= acksPerPhaseMin ? true : null));
      const healMs = Date.now();
      const controllerGapMs = longestGap(cutMs, healMs);
      await hosts.heal(leaderHost);
      const standby = await until('the old leader stands by after the heal', () => logged(c1, 'controller standby', healMs));
      assert.equal(logged(c1, 'controller leading', cutMs), null, 'the old leader never led again');
      t.diagnostic(`longest gap between acknowledged writes after the cut ${(controllerGapMs / 1000).toFixed(2)} s; healed: ${c1.name} standby after ${((standby.time - healMs) / 1000).toFixed(2)} s`);

      // 2. etcd's Raft leader's host cut off.
      const leaderIndex = await until('etcd has a leader', () => etcdLeader(etcd?.endpoints ?? []));
      const etcdHost = (['e1', 'e2', 'e3'] as const)[leaderIndex] ?? 'e1';
      const others = (etcd.endpoints).filter((_, index) => index !== leaderIndex);
      const etcdCutMs = Date.now();
      await hosts.cut(etcdHost);
      const newLeader = await until('the two members left elect a leader', async () => {
        const index = await etcdLeader(others);
        return index === null ? null : Date.now();
      });
      await until(`${acksPerPhaseMin} writes sent after the etcd cut acknowledged`, () => (acksAfter(etcdCutMs) >= acksPerPhaseMin ? true : null));
      const etcdHealMs = Date.now();
      const etcdGapMs = longestGap(etcdCutMs, etcdHealMs);
      const stepDowns = [first, second].filter((role) => logged(role, 'controller stepping down', etcdCutMs) !== null).map((role) => role.name);
      t.diagnostic(`etcd leader ${etcdHost} cut off: a leader among the other two seen at +${((newLeader - etcdCutMs) / 1000).toFixed(2)} s; longest gap between acknowledged writes ${(etcdGapMs / 1000).toFixed(2)} s; controllers that stepped down meanwhile: ${stepDowns.length === 0 ? 'none' : stepDowns.join(', ')}`);
      const etcdWarnings = warnings(etcdCutMs);
      if (etcdWarnings !== '') t.diagnostic(`warnings after the etcd cut:\n${etcdWarnings}`);
      await hosts.heal(etcdHost);
      const member = etcd.members[leaderIndex];
      await until('the healed member answers healthy', async () => {
        try {
          const response = await fetch(`${member?.clientUrl ?? ''}/health`, { signal: AbortSignal.timeout(1_000) });
          return ((await response.json()) as { health?: string }).health === 'true' ? true : null;
        } catch {
          return null;
        }
      });
      t.diagnostic(`healed: ${etcdHost} healthy after ${((Date.now() - etcdHealMs) / 1000).toFixed(2)} s`);
      await until('writes acknowledged after the heal', () => (acksAfter(etcdHealMs) >= 5 ? true : null));
    } finally {
      await load.stop();
      await network.close();
    }
    const result = await readBack([via], load.digests);
    t.diagnostic(`${load.digests.size} acknowledged writes, ${result.lost.length} lost, ${result.corrupt.length} corrupt, ${result.unreadable.length} unreadable on read-back; ${load.reads} reads under load, ${load.corruptReads} corrupt; ${load.failures} failed attempts (retried)`);
    assert.deepEqual(result, { lost: [], corrupt: [], unreadable: [] });
    assert.equal(load.corruptReads, 0);
    assert.ok(load.reads > 0, 'the reader read');
  });
});
