// One simulated run (docs/simulation.md): boot a stamp from a seed, run the workload under the
// fault injector, heal, wait for repair, run every checker, and return the run's figures,
// violations and trace digest. Nothing here depends on anything but the seed and the options,
// so the same seed gives the same result (test/sim/determinism.test.ts).
import { pino } from 'pino';
import type { Logger } from 'pino';
import { zeroSimFaultCounts } from '../src/io/sim-disk.ts';
import type { SimFaultCounts } from '../src/io/sim-disk.ts';
import { PartitionClient } from '../src/partition/partition-client.ts';
import { readMap } from '../src/partition/partition-map.ts';
import { AssertionFailure } from '../src/util/assert.ts';
import { disarmFailpoints, failpointHits, resetFailpoints, setFailpointHost } from '../src/util/failpoints.ts';
import { BlobWorkload, defaultBlobWorkloadOptions } from './blob-workload.ts';
import type { BlobWorkloadFigures, BlobWorkloadOptions } from './blob-workload.ts';
import { checkObjects, checkPartitionServers, checkProtection, checkStreams, zeroCheckFigures } from './checkers.ts';
import type { CheckFigures } from './checkers.ts';
import { FaultInjector, describe, zeroFaultCounts } from './faults.ts';
import type { FaultCounts, StampRoles } from './faults.ts';
import { Ledger } from './ledger.ts';
import { StampOperator } from './operator.ts';
import { MetaStoreProxy } from './meta-service.ts';
import { OwnershipMonitor } from './ownership.ts';
import type { OwnershipFigures } from './ownership.ts';
import { PartitionManagerRole, PartitionServerRole } from './partition-roles.ts';
import type { SimProcess } from './process.ts';
import { ExtentNodeRole, ManagerRole } from './roles.ts';
import { FrontendRole } from './frontend-role.ts';
import { SimStamp } from './stamp.ts';
import { Workload, defaultWorkloadOptions } from './workload.ts';
import type { WorkloadFigures, WorkloadOptions } from './workload.ts';

export interface SimOptions {
  readonly workload: WorkloadOptions;
  readonly blobWorkload: BlobWorkloadOptions;
  /** Share of runs (by seed) in which the blob workload runs beside the partition workload. */
  readonly blobRunRate: number;
  /** 0: no faults; 1: the documented rates. */
  readonly intensity: number;
  /** Chance per phase of a stamp power loss (docs/simulation.md, "Fault model"). */
  readonly stampPowerLossRate: number;
  readonly phaseMs: number;
  readonly convergeMsMax: number;
  /** The recovery window after the workload, before the final checks. */
  readonly recoveryMsMax: number;
  /** Bound on the run's virtual time before the final checks. */
  readonly virtualMsMax: number;
  readonly nodeCount: number;
  readonly partitionServerCount: number;
  /** Logs of every component (debugging a seed); silent otherwise. */
  readonly logger?: Logger;
  /** Trace lines kept for a failure report (more when debugging a seed). */
  readonly traceTailLines?: number;
  /** The run's work bound in timers fired (default simTimersFiredMax, sim/stamp.ts). */
  readonly timersFiredMax?: number;
}

export const defaultSimOptions: SimOptions = {
  workload: defaultWorkloadOptions, blobWorkload: defaultBlobWorkloadOptions, blobRunRate: 0.5, intensity: 1, stampPowerLossRate: 0.08, phaseMs: 10_000, convergeMsMax: 120_000, recoveryMsMax: 300_000, virtualMsMax: 3 * 3_600_000, nodeCount: 6,
  partitionServerCount: 3,
};

export interface SimResult {
  readonly seed: bigint;
  readonly ok: boolean;
  readonly violations: readonly string[];
  readonly traceDigest: string;
  readonly traceLines: number;
  readonly virtualMs: number;
  readonly realMs: number;
  readonly faults: FaultCounts;
  readonly diskFaults: SimFaultCounts;
  readonly networkFaults: Readonly<Record<string, number>>;
  readonly misdirectedWrites: number;
  readonly acknowledged: number;
  readonly indeterminate: number;
  readonly failed: number;
  readonly checks: CheckFigures;
  readonly workload: WorkloadFigures | null;
  readonly blobWorkload: BlobWorkloadFigures | null;
  readonly ownership: OwnershipFigures | null;
  readonly failpointHits: Readonly<Record<string, number>>;
  readonly phases: number;
  readonly phasesConverged: number;
  readonly recentTrace: readonly string[];
  /** The run's work: virtual-clock timers fired (what the work bound counts). */
  readonly timersFired: number;
  /** Real ms of each stage: boot, the workload under faults, the final checks (heal, repair, checkers). */
  readonly stageRealMs: StageRealMs;
}

export interface StageRealMs {
  boot: number;
  workload: number;
  checks: number;
}

interface Booted {
  readonly stamp: SimStamp;
  readonly roles: StampRoles;
  readonly monitor: OwnershipMonitor;
  /** The partition workload's process: its PartitionClient calls from it. */
  readonly frontend: SimProcess;
  readonly tables: PartitionClient;
  /** The front-end role the blob workload speaks to (null: the blob workload is off this run). */
  readonly blobFrontend: FrontendRole | null;
}

const bootBudgetMs = 120_000;

async function boot(seed: bigint, options: SimOptions): Promise<Booted> {
  const stamp = new SimStamp({
    seed, ...(options.traceTailLines === undefined ? {} : { traceTailLines: options.traceTailLines }), ...(options.timersFiredMax === undefined ? {} : { timersFiredMax: options.timersFiredMax }),
  });
  const logger = options.logger;
  const monitor = new OwnershipMonitor(stamp);
  const manager = new ManagerRole(stamp, monitor, logger);
  stamp.addRole(manager);
  await stamp.drive(manager.start(), 'boot manager', bootBudgetMs);
  const config = stamp.random('config');
  const nodes: ExtentNodeRole[] = [];
  for (let index = 0; index < options.nodeCount; index++) {
    const node = new ExtentNodeRole(stamp, { index, faultDomain: `fd${index % 3}`, upgradeDomain: `ud${index}`, groupCommit: config.int(2) === 0, ...(logger === undefined ? {} : { logger }) });
    stamp.addRole(node);
    nodes.push(node);
    await stamp.drive(node.start(), `boot ${node.name}`, bootBudgetMs);
  }
  stamp.trace(`boot nodes groupCommit=${nodes.map((node) => (node.groupCommit ? 1 : 0)).join('')}`);
  const partitionServers = Array.from({ length: options.partitionServerCount }, (_, index) => new PartitionServerRole(stamp, { index, monitor, ...(logger === undefined ? {} : { logger }) }));
  const partitionManagers = [0, 1].map((index) => new PartitionManagerRole(stamp, { index, ...(logger === undefined ? {} : { logger }) }));
  for (const role of [...partitionServers, ...partitionManagers]) {
    stamp.addRole(role);
    await stamp.drive(role.start(), `boot ${role.name}`, bootBudgetMs);
  }
  const frontend = stamp.newProcess('frontend', 'fe');
  const tables = new PartitionClient({ metaStore: new MetaStoreProxy({ network: frontend.network, clock: frontend.clock }), network: frontend.network, clock: frontend.clock });
  await stamp.drive(untilServed(stamp, frontend, partitionServers), 'boot: the map served', bootBudgetMs);
  const blobFrontend = stamp.random('blob-runs').next() < options.blobRunRate ? new FrontendRole(stamp, { index: 0, random: stamp.random('blob-ids') }) : null;
  if (blobFrontend !== null) {
    stamp.addRole(blobFrontend);
    await stamp.drive(blobFrontend.start(), `boot ${blobFrontend.name}`, bootBudgetMs);
  }
  return { stamp, roles: { manager, nodes, partitionServers, partitionManagers, frontends: blobFrontend === null ? [] : [blobFrontend] }, monitor, frontend, tables, blobFrontend };
}

/** Waits until the manager bootstrapped the map and a server serves its partition. */
async function untilServed(stamp: SimStamp, frontend: SimProcess, servers: readonly PartitionServerRole[]): Promise<void> {
  const metaStore = new MetaStoreProxy({ network: frontend.network, clock: frontend.clock });
  for (;;) {
    const current = await frontend.run(() => readMap(metaStore));
    const serving = new Set(servers.flatMap((role) => role.server?.servingPartitions() ?? []));
    if (current !== null && current.map.partitions.every((entry) => serving.has(entry.partitionId))) return;
    await stamp.clock.sleep(250);
  }
}

/** Runs one seed to the end; never throws for a failure of the system under test. */
export async function runSimulation(seed: bigint, options: SimOptions = defaultSimOptions): Promise<SimResult> {
  const startedMs = performance.now();
  resetFailpoints();
  const unhandled: string[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(`${reason instanceof AssertionFailure ? 'assertion failed (a process would exit 70)' : 'unhandled rejection or exception'}: ${describe(reason)}`);
  };
  process.on('unhandledRejection', onUnhandled);
  // An assertion failure in a handler is rethrown outside any promise (rpc-exchange crashLater):
  // in a real process it is exit 70; here it is recorded as a violation and the run goes on.
  process.on('uncaughtException', onUnhandled);
  const previousHost = setFailpointHost({ crash: () => new Promise<never>(() => undefined), sleep: () => Promise.resolve() });
  try {
    const booted = await boot(seed, options);
    return await runBooted(booted, options, seed, { startedMs, stages: { boot: performance.now() - startedMs, workload: 0, checks: 0 } }, unhandled);
  } catch (error) {
    return failedEarly(seed, startedMs, `boot: ${describe(error)}`);
  } finally {
    setFailpointHost(previousHost);
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
    resetFailpoints();
  }
}

async function runBooted(booted: Booted, options: SimOptions, seed: bigint, timing: { readonly startedMs: number; readonly stages: StageRealMs }, unhandled: string[]): Promise<SimResult> {
  const { stamp, roles, monitor } = booted;
  const operator = new StampOperator(stamp, { manager: roles.manager, nodes: roles.nodes });
  const injector = new FaultInjector(stamp, roles, operator, { phaseMs: options.phaseMs, convergeMsMax: options.convergeMsMax, intensity: options.intensity, stampPowerLossRate: options.stampPowerLossRate });
  injector.installFailpointHost();
  injector.armFailpoints();
  const ledger = new Ledger();
  const workload = new Workload(stamp, { process: booted.frontend, tables: booted.tables, ledger, workload: options.workload });
  const blobLedger = new Ledger();
  const blobs = booted.blobFrontend === null ? null : new BlobWorkload(stamp, { frontend: booted.blobFrontend, ledger: blobLedger, workload: options.blobWorkload });
  stamp.trace(`blob workload ${blobs === null ? 'off' : 'on'}`);
  const violations: string[] = [];
  const checks = zeroCheckFigures();
  try {
    const main = Promise.all([Promise.all([workload.run(), blobs?.run()]).finally(() => injector.stop()), injector.run()]);
    const workloadStartMs = performance.now();
    try {
      await stamp.drive(main, 'workload', options.virtualMsMax);
    } finally {
      timing.stages.workload = performance.now() - workloadStartMs;
    }
    disarmFailpoints();
    const finalChecks = async (): Promise<void> => {
      await injector.heal();
      const converged = await operator.awaitRepair(options.recoveryMsMax);
      if (!converged) violations.push(`liveness: repair did not converge within the ${options.recoveryMsMax} ms recovery window`);
      violations.push(...await checkObjects(stamp, workload, ledger, checks));
      if (blobs !== null) violations.push(...await checkObjects(stamp, blobs, blobLedger, checks), ...await blobs.checkDeadRows());
      violations.push(...await checkStreams(operator, roles.nodes, checks));
      violations.push(...await checkProtection(operator, roles.nodes, checks));
      violations.push(...await checkPartitionServers(stamp, operator, roles.partitionServers, checks));
    };
    const checksStartMs = performance.now();
    try {
      await stamp.drive(finalChecks(), 'final checks', options.recoveryMsMax + 3_600_000);
    } finally {
      timing.stages.checks = performance.now() - checksStartMs;
    }
  } catch (error) {
    violations.push(`run aborted: ${describe(error)}`);
  }
  violations.push(...workload.violations, ...(blobs?.violations ?? []), ...operator.violations, ...monitor.violations, ...unhandled);
  return collect({ stamp, roles, injector, ledgers: [ledger, blobLedger], workload, blobs, monitor, checks, violations, seed, ...timing });
}

function collect(run: {
  stamp: SimStamp; roles: StampRoles; injector: FaultInjector; ledgers: readonly Ledger[]; workload: Workload; blobs: BlobWorkload | null; monitor: OwnershipMonitor; checks: CheckFigures;
  violations: string[]; seed: bigint; startedMs: number; stages: StageRealMs;
}): SimResult {
  const { stamp, roles, injector } = run;
  const total = (pick: (ledger: Ledger) => number): number => run.ledgers.reduce((sum, ledger) => sum + pick(ledger), 0);
  const hits = Object.fromEntries(failpointHits());
  const disks = [roles.manager.disk, ...roles.nodes.map((node) => node.disk)];
  stamp.trace(`end violations=${run.violations.length}`);
  return {
    seed: run.seed, ok: run.violations.length === 0, violations: run.violations, traceDigest: stamp.traceDigest(), traceLines: stamp.traceLines,
    virtualMs: stamp.clock.monotonicMs(), realMs: performance.now() - run.startedMs, faults: { ...injector.counts }, diskFaults: sumDiskFaults(disks.map((disk) => disk.faultCounts())),
    networkFaults: { ...stamp.network.stats().faults }, misdirectedWrites: roles.nodes.reduce((sum, node) => sum + node.diskFaults.misdirected, 0),
    acknowledged: total((ledger) => ledger.acknowledged), indeterminate: total((ledger) => ledger.indeterminate), failed: total((ledger) => ledger.failed), checks: run.checks,
    workload: run.workload.figures, blobWorkload: run.blobs?.figures ?? null, ownership: run.monitor.figures, failpointHits: hits, phases: injector.phases, phasesConverged: injector.phasesConverged, recentTrace: run.violations.length === 0 ? [] : stamp.recentTrace(),
    timersFired: stamp.clock.timersFired, stageRealMs: run.stages,
  };
}

function sumDiskFaults(counts: readonly SimFaultCounts[]): SimFaultCounts {
  const total = zeroSimFaultCounts();
  const names = Object.keys(total) as Array<keyof SimFaultCounts>;
  for (const count of counts) for (const name of names) total[name] += count[name];
  return total;
}

function failedEarly(seed: bigint, startedMs: number, why: string): SimResult {
  return {
    seed, ok: false, violations: [why], traceDigest: '', traceLines: 0, virtualMs: 0, realMs: performance.now() - startedMs, faults: zeroFaultCounts(),
    diskFaults: sumDiskFaults([]), networkFaults: {}, misdirectedWrites: 0, acknowledged: 0, indeterminate: 0, failed: 0, checks: zeroCheckFigures(), workload: null,
    blobWorkload: null, ownership: null, failpointHits: {}, phases: 0, phasesConverged: 0, recentTrace: [], timersFired: 0, stageRealMs: { boot: performance.now() - startedMs, workload: 0, checks: 0 },
  };
}

export const silentLogger: Logger = pino({ level: 'silent' });
