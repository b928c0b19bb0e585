// SimStamp (docs/simulation.md, "What runs"): a whole stamp in one process on a virtual clock.
// It owns the clock, the network fabric, the run's seeds, the trace, and a set of roles (each a
// simulated process running real code from src/). Roles are added with addRole(); the fault
// injector and the checkers find them by kind and fault domain, so partition servers, the
// partition manager and front ends plug in later as new role kinds.
//
// Invariants: every random choice of a run comes from a generator derived from the root seed
// and a fixed label (so adding a generator does not shift the others); the trace is the run's
// observable history and its hash is the determinism oracle; drive() is the only place virtual
// time advances, and it is bounded.
import { createHash } from 'node:crypto';
import { SimNetwork } from '../src/rpc/sim-network.ts';
import { SeededRandom } from '../src/util/random.ts';
import { SimProcess } from './process.ts';
import { SimClock, drainMicrotasks } from './sim-clock.ts';

export type RoleKind = 'manager' | 'extent-node' | 'partition-server' | 'partition-manager' | 'frontend';

/** One simulated process role. */
export interface SimRole {
  readonly name: string;
  readonly kind: RoleKind;
  /** Fault domain of its disks, or null for roles without durable state of their own. */
  readonly faultDomain: string | null;
  readonly up: boolean;
  /** The current process (null while down). */
  readonly process: SimProcess | null;
  /** Starts (or restarts) the role from its disks. */
  start(): Promise<void>;
  /** kill -9 of its process(es). */
  kill(): void;
  /** Power loss of its disks (after kill): un-synced writes dropped or torn. */
  powerLoss(): void;
}

/** A run failed in a way that is not a checker's verdict: a hang or a broken bound. */
export class SimLivenessError extends Error {
  override readonly name = 'SimLivenessError';
}

/** A 64-bit seed for `label`, derived from the root seed (independent streams per concern). */
export function deriveSeed(root: bigint, label: string): bigint {
  return createHash('sha256').update(`${root}:${label}`).digest().readBigUInt64BE(0);
}

export interface SimStampOptions {
  readonly seed: bigint;
  /** Trace lines kept in memory for a failure report. */
  readonly traceTailLines?: number;
  /** The run's work bound: virtual-clock timers it may fire in all (default simTimersFiredMax). */
  readonly timersFiredMax?: number;
}

/** Work bound of one run, in timers fired (every message delivery, disk completion and timer of
 * every role is one): a run past it fails as a liveness error, the same at any machine load, so a
 * seed's verdict never depends on how busy the machine is (docs/simulation.md, "Bounds"). The CI
 * and regression seeds fire 14,000-136,000; 1 million leaves room for a trajectory that grows. */
export const simTimersFiredMax = 1_000_000;

/** KURA_SIM_TRACE=1 prints every trace line as it happens (debugging one seed). */
const traceToStderr = process.env['KURA_SIM_TRACE'] === '1';

export class SimStamp {
  readonly seed: bigint;
  readonly clock = new SimClock();
  readonly network: SimNetwork;
  private readonly roles = new Map<string, SimRole>();
  private readonly randoms = new Map<string, SeededRandom>();
  private readonly traceHash = createHash('sha256');
  private readonly traceTail: string[] = [];
  private readonly traceTailLines: number;
  private readonly timersFiredMax: number;
  private processCount = 0;
  traceLines = 0;

  constructor(options: SimStampOptions) {
    this.seed = options.seed;
    this.traceTailLines = options.traceTailLines ?? 200;
    this.timersFiredMax = options.timersFiredMax ?? simTimersFiredMax;
    this.network = new SimNetwork({ clock: this.clock, random: this.random('network'), localAddress: 'sim', faults: { delayMsMin: 0, delayMsMax: 2 } });
  }

  /** The generator for `label` (created on first use from the root seed). */
  random(label: string): SeededRandom {
    let random = this.randoms.get(label);
    if (random === undefined) {
      random = new SeededRandom(deriveSeed(this.seed, label));
      this.randoms.set(label, random);
    }
    return random;
  }

  addRole(role: SimRole): void {
    if (this.roles.has(role.name)) throw new Error(`role ${role.name} added twice`);
    this.roles.set(role.name, role);
  }

  role(name: string): SimRole {
    const role = this.roles.get(name);
    if (role === undefined) throw new Error(`no role ${name}`);
    return role;
  }

  rolesOf(kind: RoleKind): SimRole[] {
    return [...this.roles.values()].filter((role) => role.kind === kind);
  }

  allRoles(): SimRole[] {
    return [...this.roles.values()];
  }

  /** The role whose current process is `process`, if any. */
  roleOf(process: SimProcess): SimRole | null {
    return [...this.roles.values()].find((role) => role.process === process) ?? null;
  }

  /** A new simulated process with its own network endpoint at host `host`. */
  newProcess(name: string, host: string, wallOffsetMs = 0): SimProcess {
    this.processCount += 1;
    return new SimProcess({ name: `${name}#${this.processCount}`, clock: this.clock, fabric: this.network, address: `${host}:0`, wallOffsetMs });
  }

  trace(line: string): void {
    const text = `${this.clock.monotonicMs()} ${line}`;
    if (traceToStderr) process.stderr.write(`${text}\n`);
    this.traceHash.update(text).update('\n');
    this.traceLines += 1;
    this.traceTail.push(text);
    if (this.traceTail.length > this.traceTailLines) this.traceTail.shift();
  }

  /** Hash of every trace line so far (hex). */
  traceDigest(): string {
    return this.traceHash.copy().digest('hex');
  }

  recentTrace(): readonly string[] {
    return [...this.traceTail];
  }

  /**
   * Runs the simulation until `promise` settles: drains every runnable task, then fires the
   * earliest timer, repeatedly. Fails (SimLivenessError) past `budgetMs` of virtual time, or once
   * the run fired timersFiredMax timers (its work bound: a livelock that keeps firing timers
   * without moving virtual time ends here, deterministically).
   */
  async drive<T>(promise: Promise<T>, what: string, budgetMs: number): Promise<T> {
    let settled = false;
    promise.then(() => { settled = true; }, () => { settled = true; });
    const deadlineMs = this.clock.monotonicMs() + budgetMs;
    for (;;) {
      await drainMicrotasks();
      if (settled) return promise;
      const next = this.clock.nextDueMs();
      if (next === null) throw new SimLivenessError(`${what}: stuck, no timer left and not finished (deadlock)`);
      if (next > deadlineMs) throw new SimLivenessError(`${what}: not finished within ${budgetMs} ms of virtual time`);
      if (this.clock.timersFired >= this.timersFiredMax) throw new SimLivenessError(`${what}: not finished within the run's work bound (${this.timersFiredMax} timers fired)`);
      this.clock.fireNext();
    }
  }

  /** Lets `ms` of virtual time pass (every timer due meanwhile fires). */
  async idle(ms: number): Promise<void> {
    await this.drive(this.clock.sleep(ms), `idle ${ms} ms`, ms + 1);
  }
}
