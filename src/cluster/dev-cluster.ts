// DevCluster: a whole stamp as separate processes on loopback (`kura dev-cluster --data DIR`):
//
//   clients ──► TcpBalancer (--listen, default 127.0.0.1:10000) ──► front ends fe1..feN
//                                                                       │ PartitionClient (map in etcd)
//   etcd (1 or 3 members, Raft) ◄── every role       partition servers ps1..psN ── stream layer
//   controllers (stream manager + partition managers, leader-elected)   extent nodes en1..enN in 3 fault domains
//
// Start order and why: etcd first (everyone coordinates through it) → the controllers (extent
// nodes and partition servers need their addresses) → extent nodes, partition servers and front
// ends together (each waits for what it needs on its own: the stream manager places nothing before
// three fault domains registered, a front end listens once the partitions are served), each
// waited on until it logged its address and its admin /readyz says ready → the balancer last, so
// a client that connects is served. The connection string is printed only then. Stop is the
// reverse: the balancer, then front ends, partition servers, extent nodes (one tier, in parallel),
// the controllers, etcd; each process SIGTERM, a bounded grace, then SIGKILL.
//
// Layout of DIR: cluster.json (the topology kept across restarts and the running processes,
// cluster-state.ts), etcd/<member>/ (etcd's data), extent-nodes/<node>/ (one disk per node),
// logs/<process>.log (each process's own output, appended across restarts). A restart on the same
// DIR reuses all of it: the same etcd members on the same ports, the same node identities.
//
// Supervision (once the stamp is ready, unless restart is off): a child that dies is reported
// through onExit and started again with the same arguments on the same ports, as systemd's
// Restart=always would: after 1 s, doubling up to 30 s while it keeps dying within a minute of its
// start or failing to become ready; each restart is logged through progress and recorded in
// cluster.json (new pid, restart count). Same ports because the others hold its address: extent
// nodes and partition servers were given every controller's, the balancer every front end's, the
// stream manager and the partition map a node's or a server's; so every kura role's --listen and
// --admin ports are chosen once, below Linux's ephemeral range like etcd's (an outgoing connection
// never holds one meanwhile), and kept in cluster.json (Topology.rolePorts). A port is chosen by a
// probe that finds it free, so something may take it before the role binds it: a role whose first
// start in this run exits with EADDRINUSE gets new ports and starts again (startFirstTime); no peer
// knows its address before that start, and the moved ports are recorded like the others.
//
// Fault model: any child may die at any time (a fault run kills them on purpose): reported, then
// restarted (or, with restart off, left down: `kura status` shows it down). A start that
// fails stops what it started. A supervisor killed with -9 takes its children with it (each gets
// SIGTERM from the kernel, role-process.ts), a restart in progress included; where that is not
// available (no setpriv) it leaves orphans, and the next start on the same DIR finds them by the
// pids in cluster.json and kills them before starting.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { connectEtcd } from '../metastore/connect-etcd.ts';
import { isStorageError, StorageError } from '../util/errors.ts';
import { clusterProcessesKey, readClusterState, writeClusterState, type ClusterState, type ProcessRecord, type RoleKind, type Topology } from './cluster-state.ts';
import { probeEtcd, probeReadyz } from './probes.ts';
import { connectionDrainingMessage, describeExit, RoleProcess, type ExitStatus, type ReadyCheck } from './role-process.ts';
import { TcpBalancer } from './tcp-balancer.ts';

/** What the caller asks for; an undefined count keeps the stored topology (or the default). */
export interface TopologyRequest {
  readonly etcdMembers?: number | undefined;
  readonly extentNodes?: number | undefined;
  readonly partitionServers?: number | undefined;
  readonly frontends?: number | undefined;
  readonly controllers?: number | undefined;
}

export const topologyDefaults = { etcdMembers: 3, extentNodes: 6, partitionServers: 2, frontends: 2, controllers: 2 } as const;
export const faultDomainCount = 3;

export interface DevClusterOptions {
  /** Absolute path of the cluster's data directory (locked by the caller). */
  readonly dataDirectory: string;
  readonly topology: TopologyRequest;
  readonly listen: { readonly host: string; readonly port: number };
  /** How to run `kura`: the Node binary and the entry script. */
  readonly kura: { readonly command: string; readonly args: readonly string[] };
  readonly etcdCommand: string;
  readonly logLevel: string;
  readonly progress: (line: string) => void;
  /** A child ended while the cluster was not stopping; restart says when it is started again
   * (null: restart is off, it stays down). */
  readonly onExit: (name: string, status: ExitStatus, restart: RestartPlan | null) => void;
  /** Start a child again when it dies (after the stamp was ready). */
  readonly restart: boolean;
  readonly readyTimeoutMs: number;
  readonly stopTimeoutMs: number;
  /** Aborted (SIGINT/SIGTERM during the start): stop what started, between tiers. */
  readonly signal?: AbortSignal;
  /** Test hook (KURA_DEV_CLUSTER_TEST_PORTS): ports a role is given at this start instead of the
   * chosen ones, unprobed, so a test can hand it a port that something else holds. */
  readonly testPorts?: TestPorts | undefined;
}

/** Per role name, a listen and/or admin port to use instead of the chosen one (tests only). For an
 * etcd member of a new stamp (etcd1..3), listen is its client port and admin its peer port. */
export type TestPorts = Readonly<Record<string, { readonly listen?: number | undefined; readonly admin?: number | undefined }>>;

type RolePorts = NonNullable<Topology['rolePorts']>[string];

type EtcdMemberPorts = Topology['etcdMembers'][number];

/** The ports of this start: etcd's, which move only while a new stamp's etcd tier first starts
 * (startEtcdFirstTime) and never after, and each kura role's, which a role's first start may still
 * change (startFirstTime) before any peer knows them. */
interface PortBook {
  etcd: EtcdMemberPorts[];
  readonly roles: Map<string, RolePorts>;
}

export interface RestartPlan {
  /** This is the child's n-th restart. */
  readonly attempt: number;
  readonly inMs: number;
}

/** One process to run: its spec, then (once started) its handle. */
interface Planned {
  readonly name: string;
  readonly role: RoleKind;
  readonly faultDomain: string | null;
  readonly ready: ReadyCheck;
  readonly command: string;
  readonly args: (addresses: StartedAddresses) => readonly string[];
  /** The service address from its log (or fixed, for etcd). */
  readonly addressOf: (process: RoleProcess) => string | null;
  readonly adminOf: (process: RoleProcess) => string | null;
  /** A front end: started with an IPC channel, the balancer hands its connections over. */
  readonly handOff: boolean;
  process: RoleProcess | null;
}

/** A supervised role's ready process and how many restarts it took (0: the first start). */
interface PublishedProcess {
  readonly process: RoleProcess;
  readonly restarts: number;
}

/** Addresses learnt from tiers already started, needed by the next ones. */
interface StartedAddresses {
  etcd: string;
  /** Every controller's address, comma-separated: extent nodes and partition servers find the leader among them. */
  controllers: string;
  /** Set once it runs: a front end that says it drains is marked down in it at once. */
  balancer: TcpBalancer | null;
}

const loopback = '127.0.0.1';
const adminListening = 'admin server listening';
const pollMs = 50;
const probeTimeoutMs = 2_000;
/** Fixed ports (etcd's, and every kura role's) come from below Linux's ephemeral range (32768+), so
 * an outgoing connection never holds one when its process starts again. etcd's are stored in etcd's
 * own membership and never move. A port is chosen when a probe finds it free, so another stamp's
 * role that is down for a restart at that moment can take it back first (seen once with two dev
 * clusters in concurrent tests): a kura role then moves at its first start (startFirstTime), and the
 * wide range keeps that rare; 11000+ stays clear of 10000-10002. */
const fixedPortLow = 11_000;
const fixedPortHigh = 32_000;
const portAttemptsMax = 256;
/** Starts of one role at the stamp's start, each on new ports after the previous could not bind. */
const bindAttemptsMax = 3;
/** Supervision back-off: the first restart after restartDelayMs, doubling up to restartDelayMaxMs
 * while the child dies again within restartStableMs of its start (or cannot start). */
const restartDelayMs = 1_000;
const restartDelayMaxMs = 30_000;
const restartStableMs = 60_000;

export class DevCluster {
  readonly dataDirectory: string;
  readonly topology: Topology;
  readonly endpoint: string;
  readonly etcdEndpoints: readonly string[];
  private readonly tiers: readonly (readonly Planned[])[];
  private readonly balancer: TcpBalancer;
  private readonly options: DevClusterOptions;
  private readonly addresses: StartedAddresses;
  private state: ClusterState;
  private stopping: Promise<void> | null = null;
  /** Aborted by stop(): pending restarts give up, a start in progress is killed. */
  private readonly supervision = new AbortController();
  private readonly supervisors: Promise<void>[] = [];
  /** Each supervised role's process as cluster.json names it: the one last known ready, with the
   * restarts it took. A restart in progress (started, not ready yet) is not named until it is ready,
   * so a record's pid and restart count always change together (another role's save in between
   * writes the old pair, never the new pid with the old count). */
  private readonly published = new Map<string, PublishedProcess>();
  /** cluster.json writes, one at a time (writeFileDurably has one writer per path). */
  private stateWrites: Promise<void> = Promise.resolve();

  private constructor(init: { options: DevClusterOptions; topology: Topology; tiers: readonly (readonly Planned[])[]; balancer: TcpBalancer; state: ClusterState; addresses: StartedAddresses }) {
    this.options = init.options;
    this.addresses = init.addresses;
    this.dataDirectory = init.options.dataDirectory;
    this.topology = init.topology;
    this.tiers = init.tiers;
    this.balancer = init.balancer;
    this.state = init.state;
    this.endpoint = `${init.options.listen.host}:${init.balancer.port}`;
    this.etcdEndpoints = etcdEndpoints(init.topology);
  }

  static async start(options: DevClusterOptions): Promise<DevCluster> {
    const directory = options.dataDirectory;
    await mkdir(join(directory, 'logs'), { recursive: true });
    const previous = await readClusterState(directory);
    if (previous !== null) await stopOrphans(previous, options);
    const resolved = await resolveTopology(previous?.topology ?? null, options.topology, options.testPorts);
    const ports: PortBook = { etcd: resolved.etcdMembers, roles: new Map(Object.entries(resolved.rolePorts ?? {})) };
    // The topology as it stands: a first start may have moved ports (startEtcdFirstTime, startFirstTime).
    const topology = (): Topology => ({ ...resolved, etcdMembers: ports.etcd, rolePorts: Object.fromEntries(ports.roles) });
    const tiers = plan(resolved, ports, options);
    let state = initialState(resolved, options);
    await writeClusterState(directory, state);
    let balancer: TcpBalancer | null = null;
    try {
      const total = tiers.reduce((sum, tier) => sum + tier.length, 0);
      const addresses: StartedAddresses = { etcd: etcdEndpoints(resolved).join(','), controllers: '', balancer: null };
      let started = 0;
      for (const tier of tiers) {
        if (options.signal?.aborted === true) throw new StorageError('config.invalid', 'start interrupted by a signal');
        const count = { started, total };
        started += tier === tiers[0] && previous === null
          ? await startEtcdFirstTime(tier, addresses, options, count, ports)
          : await startTier(tier, addresses, options, count, ports);
        state = { ...state, topology: topology(), processes: records(tiers, options), updatedAt: new Date().toISOString() };
        await writeClusterState(directory, state);
      }
      balancer = await startBalancer(tiers, options);
      addresses.balancer = balancer;
      return new DevCluster({ options, topology: topology(), tiers, balancer, state, addresses });
    } catch (error) {
      await balancer?.close();
      await stopTiers(tiers, () => undefined);
      await writeClusterState(directory, { ...state, topology: topology(), processes: records(tiers, options), supervisorPid: null, phase: 'stopped', updatedAt: new Date().toISOString() });
      throw error;
    }
  }

  /** Marks the cluster ready: cluster.json and etcd's cluster/processes name every process; from
   * now on a child that dies is restarted (options.restart). */
  async publish(connectionString: string): Promise<void> {
    this.state = { ...this.state, endpoint: this.endpoint, phase: 'ready', connectionString };
    await this.saveState();
    // The addresses never change (fixed ports), so etcd's copy stays right across restarts; only
    // the pids in it go stale (status asks a process by its address, not its pid).
    const store = await connectEtcd({ endpoints: this.etcdEndpoints });
    try {
      const value = JSON.stringify({ endpoint: this.endpoint, processes: this.state.processes });
      await store.txn({ compare: [], success: [{ kind: 'put', key: clusterProcessesKey, value }] });
    } finally {
      await store.close();
    }
    for (const planned of this.tiers.flat()) {
      if (planned.process !== null) this.published.set(planned.name, { process: planned.process, restarts: 0 });
      this.supervisors.push(this.supervise(planned));
    }
  }

  /** cluster.json with every process as it is now (the balancer too: it runs inside dev-cluster). */
  private saveState(phase?: ClusterState['phase'], supervisorPid?: null): Promise<void> {
    const write = async (): Promise<void> => {
      const balancer: ProcessRecord = { name: 'balancer', role: 'balancer', address: this.endpoint, admin: null, pid: process.pid, log: '-', faultDomain: null };
      const processes = [...records(this.tiers, this.options, this.published), balancer];
      this.state = { ...this.state, processes, phase: phase ?? this.state.phase, updatedAt: new Date().toISOString(), ...(supervisorPid === null ? { supervisorPid } : {}) };
      await writeClusterState(this.dataDirectory, this.state);
    };
    this.stateWrites = this.stateWrites.then(write, write);
    return this.stateWrites;
  }

  /** Waits for the child to die and starts it again (with back-off), until stop(). */
  private async supervise(planned: Planned): Promise<void> {
    const signal = this.supervision.signal;
    let failures = 0;
    let startedAtMs = Date.now();
    for (let child = planned.process; child !== null; child = planned.process) {
      const status = await untilAborted(child.exited, signal);
      if (status === null || this.stopping !== null) return;
      if (Date.now() - startedAtMs >= restartStableMs) failures = 0;
      if (!this.options.restart) {
        this.options.onExit(planned.name, status, null);
        return;
      }
      const attempt = (this.published.get(planned.name)?.restarts ?? 0) + 1;
      let delayMs = backOffMs(failures);
      this.options.onExit(planned.name, status, { attempt, inMs: delayMs });
      for (;;) {
        if (!await sleepUnlessAborted(delayMs, signal)) return;
        try {
          await startProcess(planned, this.addresses, this.options, signal);
          break;
        } catch (error) {
          const failed = planned.process;
          failed?.kill();
          await failed?.exited;
          if (signal.aborted) return;
          failures++;
          delayMs = backOffMs(failures);
          this.options.progress(`${planned.name} did not come back (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); next try in ${(delayMs / 1000).toFixed(0)} s`);
        }
      }
      failures++;
      startedAtMs = Date.now();
      if (planned.process !== null) this.published.set(planned.name, { process: planned.process, restarts: attempt });
      const where = planned.process === null ? '?' : planned.addressOf(planned.process) ?? '?';
      this.options.progress(`${planned.name} restarted (restart ${attempt}, pid ${planned.process?.pid ?? '?'}) on ${where}`);
      await this.saveState().catch((error: unknown) => this.options.progress(`cluster.json not updated: ${String(error)}`));
    }
  }

  /** The balancer's port (the one chosen when --listen asked for port 0). */
  get port(): number {
    return this.balancer.port;
  }

  /** Every process with its live handle (tests and the fault script kill them). */
  get processes(): readonly { readonly name: string; readonly role: RoleKind; readonly process: RoleProcess | null }[] {
    return this.tiers.flat().map((planned) => ({ name: planned.name, role: planned.role, process: planned.process }));
  }

  /** Graceful stop in reverse start order; reports each process's end through progress. */
  stop(): Promise<void> {
    this.stopping ??= this.stopOnce();
    return this.stopping;
  }

  private async stopOnce(): Promise<void> {
    this.supervision.abort();
    await Promise.all(this.supervisors);
    await this.saveState('stopping');
    await this.balancer.close();
    this.options.progress(`balancer on ${this.endpoint} closed`);
    await stopTiers(this.tiers, this.options.progress);
    await this.saveState('stopped', null);
  }
}

function etcdEndpoints(topology: Topology): string[] {
  return topology.etcdMembers.map((member) => `http://${loopback}:${member.clientPort}`);
}

async function resolveTopology(stored: Topology | null, request: TopologyRequest, testPorts: TestPorts | undefined): Promise<Topology> {
  const etcdMemberCount = request.etcdMembers ?? stored?.etcdMembers.length ?? topologyDefaults.etcdMembers;
  if (etcdMemberCount !== 1 && etcdMemberCount !== 3) throw new StorageError('config.invalid', `--etcd-members must be 1 or 3, got ${etcdMemberCount}`);
  if (stored !== null && stored.etcdMembers.length !== etcdMemberCount) {
    throw new StorageError('config.invalid', `this data directory holds a ${stored.etcdMembers.length}-member etcd cluster; --etcd-members ${etcdMemberCount} cannot change it (use a new --data)`);
  }
  const counts = {
    extentNodes: request.extentNodes ?? stored?.extentNodes ?? topologyDefaults.extentNodes,
    partitionServers: request.partitionServers ?? stored?.partitionServers ?? topologyDefaults.partitionServers,
    frontends: request.frontends ?? stored?.frontends ?? topologyDefaults.frontends,
    controllers: request.controllers ?? stored?.controllers ?? topologyDefaults.controllers,
  };
  if (counts.extentNodes < faultDomainCount) throw new StorageError('config.invalid', `--extent-nodes must be at least ${faultDomainCount} (three replicas in three fault domains), got ${counts.extentNodes}`);
  if (stored !== null && counts.extentNodes < stored.extentNodes) {
    throw new StorageError('config.invalid', `this data directory has ${stored.extentNodes} extent nodes holding replicas; --extent-nodes ${counts.extentNodes} would leave some out (they can be added, not removed)`);
  }
  const taken = new Set<number>();
  let etcdMembers = stored?.etcdMembers;
  if (etcdMembers === undefined) {
    const list = await choosePorts(etcdMemberCount * 2, taken, 'etcd');
    etcdMembers = Array.from({ length: etcdMemberCount }, (_, i) => {
      const name = `etcd${i + 1}`;
      const forced = testPorts?.[name];
      return { name, clientPort: forced?.listen ?? list[2 * i] ?? 0, peerPort: forced?.admin ?? list[2 * i + 1] ?? 0 };
    });
  }
  for (const member of etcdMembers) taken.add(member.clientPort).add(member.peerPort);
  const rolePorts = await chooseRolePorts(roleNames(counts), stored?.rolePorts ?? {}, taken);
  for (const [name, forced] of Object.entries(testPorts ?? {})) {
    const chosen = rolePorts[name];
    if (chosen !== undefined) rolePorts[name] = { listen: forced.listen ?? chosen.listen, admin: forced.admin ?? chosen.admin };
  }
  return { clusterToken: stored?.clusterToken ?? `kura-dev-${randomBytes(6).toString('hex')}`, etcdMembers, ...counts, rolePorts };
}

/** Every kura role's process name, for a topology's counts. */
function roleNames(counts: Pick<Topology, 'controllers' | 'extentNodes' | 'partitionServers' | 'frontends'>): string[] {
  return [...numbered('c', counts.controllers), ...numbered('en', counts.extentNodes), ...numbered('ps', counts.partitionServers), ...numbered('fe', counts.frontends)];
}

/** A listen and an admin port per role: the stored ones if both are free now (nothing of this
 * stamp runs yet: orphans were stopped), else new ones. Unlike etcd's, a role's ports may change
 * between two starts of the stamp: every role starts again then and learns the others afresh. */
async function chooseRolePorts(names: readonly string[], stored: NonNullable<Topology['rolePorts']>, taken: Set<number>): Promise<NonNullable<Topology['rolePorts']>> {
  const chosen: Record<string, { listen: number; admin: number }> = {};
  for (const name of names) {
    const previous = stored[name];
    if (previous !== undefined && !taken.has(previous.listen) && !taken.has(previous.admin) && previous.listen !== previous.admin && await portFree(previous.listen) && await portFree(previous.admin)) {
      chosen[name] = previous;
    } else {
      const [listen = 0, admin = 0] = await choosePorts(2, taken, name);
      chosen[name] = { listen, admin };
    }
    taken.add(chosen[name].listen).add(chosen[name].admin);
  }
  return chosen;
}

/** count free loopback ports below the ephemeral range, none of them in taken. */
async function choosePorts(count: number, taken: ReadonlySet<number>, forWhat: string): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; attempt < portAttemptsMax && ports.size < count; attempt++) {
    const port = randomInt(fixedPortLow, fixedPortHigh);
    if (!ports.has(port) && !taken.has(port) && await portFree(port)) ports.add(port);
  }
  if (ports.size < count) throw new StorageError('config.invalid', `found no ${count} free loopback ports for ${forWhat} in ${fixedPortLow}..${fixedPortHigh}`);
  return [...ports];
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, loopback, () => server.close(() => resolve(true)));
  });
}

/** The processes in start order, tier by tier (a tier starts in parallel). */
function plan(topology: Topology, book: PortBook, options: DevClusterOptions): Planned[][] {
  const directory = options.dataDirectory;
  const kura = (name: string, role: RoleKind, ready: string, args: Planned['args'], faultDomain: string | null = null): Planned => ({
    name, role, faultDomain, ready: { kind: 'log', message: ready }, command: options.kura.command, handOff: role === 'frontend',
    args: (addresses) => [...options.kura.args, ...args(addresses), '--log-level', options.logLevel],
    addressOf: (process) => process.addresses.get(ready) ?? null,
    adminOf: (process) => process.addresses.get(adminListening) ?? null,
    process: null,
  });
  // Read at each start: a role whose first start could not bind starts again on new ports.
  const ports = (name: string): string[] => {
    const fixed = book.roles.get(name);
    if (fixed === undefined) throw new StorageError('config.invalid', `no ports chosen for ${name}`);
    return ['--listen', `${loopback}:${fixed.listen}`, '--admin', `${loopback}:${fixed.admin}`];
  };
  const etcd = topology.etcdMembers.map((_, i) => etcdMember(i, topology.clusterToken, book, options));
  // Every controller listens from the start (the standbys answer "not leader"); extent nodes and
  // partition servers get the list of all of them and find the leader (docs/cluster.md).
  const controllers = numbered('c', topology.controllers).map((name) => kura(name, 'controller', 'controller listening', (a) => [
    'controller', '--etcd', a.etcd, ...ports(name), '--controller-id', name,
  ]));
  const extentNodes = numbered('en', topology.extentNodes).map((name, i) => {
    const faultDomain = `fd${(i % faultDomainCount) + 1}`;
    return kura(name, 'extent-node', 'extent node listening', (a) => [
      'extent-node', '--disk', join(directory, 'extent-nodes', name), '--fault-domain', faultDomain, '--upgrade-domain', `ud${i + 1}`,
      ...ports(name), '--manager', a.controllers, '--node-id', name,
    ], faultDomain);
  });
  const partitionServers = numbered('ps', topology.partitionServers).map((name) => kura(name, 'partition-server', 'partition server listening', (a) => [
    'partition-server', '--etcd', a.etcd, '--stream-manager', a.controllers, ...ports(name), '--server-id', name,
  ]));
  const frontends = numbered('fe', topology.frontends).map((name) => kura(name, 'frontend', 'frontend listening', (a) => [
    'frontend', '--etcd', a.etcd, ...ports(name),
  ]));
  // Extent nodes, partition servers and front ends start together: each waits on its own for what
  // it needs (registration, the partition map, partitions served), so their start-ups overlap.
  return [etcd, controllers, [...extentNodes, ...partitionServers, ...frontends]];
}

function numbered(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);
}

/** The i-th etcd member; its ports are read from the book at each start (they may move once, see
 * startEtcdFirstTime). */
function etcdMember(i: number, clusterToken: string, ports: PortBook, options: DevClusterOptions): Planned {
  const member = (): EtcdMemberPorts => {
    const found = ports.etcd[i];
    if (found === undefined) throw new StorageError('config.invalid', `no ports chosen for etcd member ${i + 1}`);
    return found;
  };
  const clientUrl = (): string => `http://${loopback}:${member().clientPort}`;
  const name = member().name;
  return {
    name, role: 'etcd', faultDomain: null, command: options.etcdCommand,
    ready: { kind: 'probe', probe: async () => (await probeEtcd(clientUrl(), probeTimeoutMs)).state === 'ready' },
    // etcd reads --initial-* only when its data directory is empty: a restart keeps its membership.
    args: () => {
      const peerUrl = `http://${loopback}:${member().peerPort}`;
      const initialCluster = ports.etcd.map((m) => `${m.name}=http://${loopback}:${m.peerPort}`).join(',');
      return [
        '--name', name, '--data-dir', etcdDataDirectory(options, name),
        '--listen-client-urls', clientUrl(), '--advertise-client-urls', clientUrl(),
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', clusterToken,
        '--log-level', 'warn',
      ];
    },
    addressOf: () => clientUrl(),
    adminOf: () => null,
    handOff: false,
    process: null,
  };
}

function etcdDataDirectory(options: DevClusterOptions, member: string): string {
  return join(options.dataDirectory, 'etcd', member);
}

/** A new stamp's etcd tier, started for the first time. Its ports were probed free when chosen, but
 * something may take one before etcd binds it (the race startFirstTime handles for kura roles).
 * etcd writes its membership (every member's peer URL) into its data directory at its first start,
 * so a member cannot move alone: when one exits with its port in use, the whole tier stops, its
 * data directories (holding nothing yet: no kura role has started) are removed, and every member
 * starts again on new ports, bindAttemptsMax times in all. After that they never move. */
async function startEtcdFirstTime(tier: readonly Planned[], addresses: StartedAddresses, options: DevClusterOptions, count: { started: number; total: number }, ports: PortBook): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startTier(tier, addresses, options, count, ports);
    } catch (error) {
      const busy = etcdPortInUse(error, ports.etcd);
      if (busy === null || attempt >= bindAttemptsMax || options.signal?.aborted === true) throw error;
      await stopTiers([tier], () => undefined);
      for (const planned of tier) await rm(etcdDataDirectory(options, planned.name), { recursive: true, force: true });
      const taken = new Set([...ports.roles.values()].flatMap((role) => [role.listen, role.admin]));
      const list = await choosePorts(ports.etcd.length * 2, taken, 'etcd');
      ports.etcd = ports.etcd.map((member, i) => ({ name: member.name, clientPort: list[2 * i] ?? 0, peerPort: list[2 * i + 1] ?? 0 }));
      addresses.etcd = ports.etcd.map((member) => `http://${loopback}:${member.clientPort}`).join(',');
      options.progress(`etcd: port ${busy} was taken after it was chosen (address already in use); starting every etcd member again on new ports (${addresses.etcd})`);
    }
  }
}

/** Which etcd port a failed first start found in use (etcd's log says so and names it); null when it
 * failed for another reason. */
function etcdPortInUse(error: unknown, members: readonly EtcdMemberPorts[]): number | null {
  if (!isStorageError(error)) return null;
  const tail = error.context['logTail'];
  if (typeof tail !== 'string' || !tail.includes('address already in use')) return null;
  return members.flatMap((member) => [member.clientPort, member.peerPort]).find((port) => new RegExp(`:${port}\\b`).test(tail)) ?? null;
}

/** Starts a tier in parallel and waits until each is ready; returns how many started. */
async function startTier(tier: readonly Planned[], addresses: StartedAddresses, options: DevClusterOptions, count: { started: number; total: number }, ports: PortBook): Promise<number> {
  let done = count.started;
  const results = await Promise.allSettled(tier.map(async (planned) => {
    const startMs = Date.now();
    await startFirstTime(planned, addresses, options, ports);
    done++;
    const where = planned.process === null ? '?' : planned.addressOf(planned.process) ?? '?';
    options.progress(`[${done}/${count.total}] ${planned.name} (${planned.role}${planned.faultDomain === null ? '' : `, ${planned.faultDomain}`}) ready on ${where} in ${((Date.now() - startMs) / 1000).toFixed(1)} s`);
  }));
  const failed = results.find((result) => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  const controllers = tier.filter((planned) => planned.role === 'controller').map((planned) => (planned.process === null ? null : planned.addressOf(planned.process)));
  if (controllers.length > 0) addresses.controllers = controllers.filter((address) => address !== null).join(',');
  return tier.length;
}

/** A kura role's first start in this run of the stamp. Its ports were probed free when they were
 * chosen, but something may take one before the role binds it (another stamp's process that was
 * down for a restart came back first: seen in CI with two dev clusters in concurrent tests). No
 * peer knows them yet (the others learn a role's address from this start on: its log, its
 * registration), so a role that exits with EADDRINUSE on one of its ports gets two new ones and
 * starts again, bindAttemptsMax times in all; the caller records them in cluster.json and every
 * later restart (supervise) uses them and never moves. etcd's tier moves as a whole
 * (startEtcdFirstTime). */
async function startFirstTime(planned: Planned, addresses: StartedAddresses, options: DevClusterOptions, ports: PortBook): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await startProcess(planned, addresses, options, options.signal);
      return;
    } catch (error) {
      const fixed = ports.roles.get(planned.name);
      const busy = fixed === undefined ? null : portInUse(error, fixed);
      if (fixed === undefined || busy === null || attempt >= bindAttemptsMax || options.signal?.aborted === true) throw error;
      const taken = new Set([...ports.etcd.flatMap((member) => [member.clientPort, member.peerPort]), ...[...ports.roles.values()].flatMap((role) => [role.listen, role.admin])]);
      const [listen = 0, admin = 0] = await choosePorts(2, taken, planned.name);
      ports.roles.set(planned.name, { listen, admin });
      options.progress(`${planned.name}: port ${busy} was taken after it was chosen (EADDRINUSE); starting it again on ${listen} (admin ${admin})`);
    }
  }
}

/** Which of the role's ports its failed start found in use (its log says EADDRINUSE and names the
 * port); null when it failed for another reason. */
function portInUse(error: unknown, fixed: RolePorts): number | null {
  if (!isStorageError(error)) return null;
  const tail = error.context['logTail'];
  if (typeof tail !== 'string' || !tail.includes('EADDRINUSE')) return null;
  return [fixed.listen, fixed.admin].find((port) => new RegExp(`:${port}\\b`).test(tail)) ?? null;
}

/** Starts one process (planned.process is its handle from the spawn on) and waits until it is
 * ready: its log line or probe, then (a role with an admin port) its /readyz. */
async function startProcess(planned: Planned, addresses: StartedAddresses, options: DevClusterOptions, signal: AbortSignal | undefined): Promise<void> {
  planned.process = await RoleProcess.start({
    name: planned.name, command: planned.command, args: planned.args(addresses), logPath: join(options.dataDirectory, 'logs', `${planned.name}.log`),
    ready: planned.ready, readyTimeoutMs: options.readyTimeoutMs, stopTimeoutMs: options.stopTimeoutMs, pollMs, abort: signal,
    ipc: planned.handOff ? { onMessage: (message) => { if (message === connectionDrainingMessage) addresses.balancer?.markDown(planned.name); } } : undefined,
  });
  await waitAdminReady(planned, options, signal);
}

/** A role with an admin port is started when its /readyz says so, not when it merely listens. */
async function waitAdminReady(planned: Planned, options: DevClusterOptions, signal: AbortSignal | undefined): Promise<void> {
  const child = planned.process;
  const admin = child === null ? null : planned.adminOf(child);
  if (child === null || admin === null) return;
  const deadlineMs = Date.now() + options.readyTimeoutMs;
  for (;;) {
    const probe = await probeReadyz(admin, probeTimeoutMs);
    if (probe.state === 'ready') return;
    if (child.exit !== null) throw new StorageError('config.invalid', `${planned.name} exited (${describeExit(child.exit)}) before /readyz said ready: ${probe.reason}`);
    if (signal?.aborted === true) throw new StorageError('config.invalid', `${planned.name}: start interrupted by a signal`);
    if (Date.now() > deadlineMs) throw new StorageError('config.invalid', `${planned.name} not ready within ${options.readyTimeoutMs} ms: ${probe.reason}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs * 4));
  }
}

async function startBalancer(tiers: readonly (readonly Planned[])[], options: DevClusterOptions): Promise<TcpBalancer> {
  const backends = tiers.flat().filter((planned) => planned.role === 'frontend' && planned.process !== null).map((planned) => {
    const child = planned.process;
    const admin = child === null ? null : planned.adminOf(child);
    return {
      name: planned.name,
      address: child === null ? '' : planned.addressOf(child) ?? '',
      healthy: admin === null ? null : async () => (await probeReadyz(admin, probeTimeoutMs)).state === 'ready',
      // The current process of this front end (a restarted one has a new channel).
      handOff: (socket: Socket) => planned.process?.handOff(socket) ?? Promise.resolve('refused' as const),
    };
  });
  const balancer = await TcpBalancer.start({ host: options.listen.host, port: options.listen.port, backends, checkMs: 500, connectTimeoutMs: 2_000, connectionsMax: 1024 });
  options.progress(`balancer on ${options.listen.host}:${balancer.port} → ${backends.map((b) => `${b.name} ${b.address}`).join(', ')}`);
  return balancer;
}

/** Who stops first: the reverse of the data path, so nothing stops under a process still using it. */
const stopOrder: readonly (readonly RoleKind[])[] = [['frontend'], ['partition-server'], ['extent-node'], ['controller'], ['etcd']];

/** Stops every started process, group by group in stopOrder; a group stops in parallel. */
async function stopTiers(tiers: readonly (readonly Planned[])[], progress: (line: string) => void): Promise<void> {
  const all = tiers.flat();
  for (const roles of stopOrder) {
    await Promise.all(all.filter((planned) => roles.includes(planned.role)).map(async (planned) => {
      const child = planned.process;
      if (child === null) return;
      const before = child.exit;
      const status = await child.stop();
      progress(`${planned.name} ${before === null ? 'stopped' : 'was already down'} (${describeExit(status)})`);
    }));
  }
}

/** The records of cluster.json: each role's published process once supervised, else its current one. */
function records(tiers: readonly (readonly Planned[])[], options: DevClusterOptions, published?: ReadonlyMap<string, PublishedProcess>): ProcessRecord[] {
  return tiers.flat().map((planned) => {
    const entry = published?.get(planned.name);
    const child = entry === undefined ? planned.process : entry.process;
    const restarted = entry === undefined || entry.restarts === 0 ? undefined : entry.restarts;
    return {
      ...(restarted === undefined ? {} : { restarts: restarted }),
      name: planned.name, role: planned.role, faultDomain: planned.faultDomain,
      address: child === null ? null : planned.addressOf(child),
      admin: child === null ? null : planned.adminOf(child),
      pid: child?.pid ?? null,
      log: join(options.dataDirectory, 'logs', `${planned.name}.log`),
    };
  });
}

function initialState(topology: Topology, options: DevClusterOptions): ClusterState {
  return {
    version: 1, topology, supervisorPid: process.pid, phase: 'starting', updatedAt: new Date().toISOString(), connectionString: null,
    endpoint: `${options.listen.host}:${options.listen.port}`, processes: [],
  };
}

/** Kills processes a dead supervisor left running on this data directory (found by pid, and
 * recognised by their command line naming this directory or its etcd). */
async function stopOrphans(previous: ClusterState, options: DevClusterOptions): Promise<void> {
  const marks = [options.dataDirectory, ...etcdEndpoints(previous.topology)];
  for (const record of previous.processes) {
    if (record.pid === null) continue;
    const commandLine = await readFile(`/proc/${record.pid}/cmdline`, 'utf8').catch(() => '');
    if (!marks.some((mark) => commandLine.includes(mark))) continue;
    try {
      process.kill(record.pid, 'SIGKILL');
    } catch {
      continue; // gone meanwhile
    }
    await waitGone(record.pid, options.stopTimeoutMs);
    options.progress(`killed ${record.name} (pid ${record.pid}), left running by a previous dev-cluster that died`);
  }
}

/** Waits (bounded) until no process has this pid, or only its zombie: its ports and files are
 * free again (a container's pid 1 may never reap an orphan). */
async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const deadlineMs = Date.now() + timeoutMs;
  while (Date.now() < deadlineMs) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Field 3, after the parenthesised command name, is the state; Z is a zombie.
    if (stat === '' || stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  throw new StorageError('config.invalid', `process ${pid} left by a previous dev-cluster did not exit after SIGKILL`);
}

function backOffMs(failures: number): number {
  return Math.min(restartDelayMaxMs, restartDelayMs * 2 ** Math.min(failures, 16));
}

/** The promise's value, or null once the signal is aborted. */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | null> {
  if (signal.aborted) return null;
  let onAbort = (): void => undefined;
  const aborted = new Promise<null>((resolve) => {
    onAbort = () => resolve(null);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Sleeps ms; false if the signal was aborted first. */
async function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const slept = new Promise<true>((resolve) => { timer = setTimeout(() => resolve(true), ms); });
  try {
    return (await untilAborted(slept, signal)) ?? false;
  } finally {
    clearTimeout(timer);
  }
}
