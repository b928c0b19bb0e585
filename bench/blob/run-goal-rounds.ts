// Runs the goal rounds (goal-rounds.ts has the method and the pure parts): starts every peer the
// rounds need, each on its own port and temporary directory, warms each up once, then for each
// goal workload the plan keeps runs its R rounds, each round measuring its peers one after the
// other in the rotated order. While one peer is measured the others are idle; their CPU over the
// cell is read from /proc and kept with the cell, so a peer busy in the background (a GC, a
// flush) shows up instead of silently taking the measured peer's cores. No kill -9 here (the
// peers' own runs made the durability checks). Every peer is stopped at the end, also on failure.
import { loadavg } from 'node:os';
import type { ProgressSink } from '../lib/progress.ts';
import type { PlanDecision } from './budget-plan.ts';
import { idleProbeMs, roundOrder, settleMs, type RoundCell, type RoundWorkload } from './goal-rounds.ts';
import { PeerUnavailableError, type BenchPeer } from './peer.ts';
import type { BlobProfile } from './profiles.ts';
import type { SkippedWorkload } from './results.ts';
import { runWorkload, specLabel, startSession, warmUp, type PeerSession } from './workloads.ts';

export type GoalRoundsStatus =
  | { readonly status: 'ran' }
  | { readonly status: 'failed'; readonly error: string };

export interface GoalRoundsOutcome {
  readonly rounds: number;
  readonly cells: readonly RoundCell[];
  /** Goal workloads the plan left out (time budget), and why. */
  readonly skipped: readonly SkippedWorkload[];
  /** Each started peer's CPU (ms a second) over idleProbeMs after every warm-up and a pause: an idle server should show ~0. */
  readonly idleCpuMsPerSecond: Readonly<Record<string, number>>;
  /** Peers that could not start: their workloads ran without them (or not at all with fewer than two peers). */
  readonly unavailable: readonly { readonly peer: string; readonly reason: string }[];
  readonly outcome: GoalRoundsStatus;
}

export interface GoalRoundsOptions {
  readonly workloads: readonly RoundWorkload[];
  readonly factories: ReadonlyMap<string, () => BenchPeer>;
  readonly profile: BlobProfile;
  readonly progress: ProgressSink;
  /** The budget planner's decision for the rounds' workload `index`, asked right before it starts. */
  readonly decide: (index: number) => PlanDecision | undefined;
}

/** Every started peer's CPU over idleProbeMs, after the warm-ups have settled: the figure that says "idle" means idle. */
async function idleCpu(sessions: ReadonlyMap<string, PeerSession>): Promise<Record<string, number>> {
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  const before = [...sessions.values()].map((session) => session.peer.sample().cpuSeconds);
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, idleProbeMs));
  const seconds = (performance.now() - t0) / 1000;
  return Object.fromEntries([...sessions.values()].map((session, index) => [session.peer.name, ((session.peer.sample().cpuSeconds - (before[index] ?? 0)) * 1000) / seconds]));
}

function load1m(): number {
  return loadavg()[0] ?? Number.NaN;
}

/** Starts every peer the workloads name; one that cannot run in this build is left out. */
async function startPeers(options: GoalRoundsOptions, sessions: Map<string, PeerSession>, unavailable: { peer: string; reason: string }[]): Promise<void> {
  for (const name of new Set(options.workloads.flatMap((workload) => workload.peers))) {
    const factory = options.factories.get(name);
    if (factory === undefined) continue;
    options.progress.step(`goal rounds: starting ${name}`);
    const peer = factory();
    try {
      const session = await startSession(peer, options.profile, { phase: 'goal-round' });
      sessions.set(name, session);
      await warmUp(session);
    } catch (error) {
      await peer.stop();
      if (!(error instanceof PeerUnavailableError)) throw error;
      unavailable.push({ peer: name, reason: error.reason });
    }
  }
}

/** One peer's cell(s) of a round, with the other peers' CPU over the same time. */
async function measureCell(sessions: ReadonlyMap<string, PeerSession>, session: PeerSession, workload: RoundWorkload, where: { readonly workload: number; readonly round: number; readonly position: number }): Promise<RoundCell[]> {
  const others = [...sessions.values()].filter((other) => other !== session);
  const before = others.map((other) => other.peer.sample().cpuSeconds);
  const atStart = load1m();
  const t0 = performance.now();
  // A container per cell, never deleted while the rounds run (PeerSession.phase).
  const rows = await runWorkload(session, workload.spec, `r${where.round}-w${where.workload}`);
  const seconds = (performance.now() - t0) / 1000;
  const othersCpuMsPerSecond = Object.fromEntries(others.map((other, index) => [other.peer.name, ((other.peer.sample().cpuSeconds - (before[index] ?? 0)) * 1000) / seconds]));
  const loadAverage1m = { atStart, atEnd: load1m() };
  return rows.map((row) => ({ ...row, round: where.round, position: where.position, othersCpuMsPerSecond, loadAverage1m, workloadWallSeconds: seconds }));
}

async function runRounds(options: GoalRoundsOptions, sessions: ReadonlyMap<string, PeerSession>, cells: RoundCell[], skipped: SkippedWorkload[]): Promise<void> {
  const profile = options.profile;
  for (const [index, workload] of options.workloads.entries()) {
    const label = specLabel(workload.spec, profile);
    const decision = options.decide(index);
    const present = workload.peers.filter((name) => sessions.has(name));
    if (decision?.run !== true || present.length < 2) {
      skipped.push({ workload: label, reason: present.length < 2 ? `fewer than two of ${workload.peers.join(', ')} started` : (decision?.reason ?? 'not planned') });
      options.progress.skipTo(options.progress.done + profile.goalRounds);
      continue;
    }
    for (let round = 0; round < profile.goalRounds; round += 1) {
      options.progress.step(`goal rounds: ${label}, round ${round + 1} of ${profile.goalRounds}`);
      for (const [position, name] of roundOrder(present, round).entries()) {
        const session = sessions.get(name);
        if (session !== undefined) cells.push(...(await measureCell(sessions, session, workload, { workload: index, round, position })));
      }
    }
  }
}

/** Starts the rounds' peers, runs every goal workload the plan keeps for R rounds, and always stops the peers. */
export async function runGoalRounds(options: GoalRoundsOptions): Promise<GoalRoundsOutcome> {
  const sessions = new Map<string, PeerSession>();
  const cells: RoundCell[] = [];
  const skipped: SkippedWorkload[] = [];
  const unavailable: { peer: string; reason: string }[] = [];
  const rounds = options.profile.goalRounds;
  let idleCpuMsPerSecond: Record<string, number> = {};
  try {
    await startPeers(options, sessions, unavailable);
    idleCpuMsPerSecond = await idleCpu(sessions);
    await runRounds(options, sessions, cells, skipped);
    return { rounds, cells, skipped, idleCpuMsPerSecond, unavailable, outcome: { status: 'ran' } };
  } catch (error) {
    return { rounds, cells, skipped, idleCpuMsPerSecond, unavailable, outcome: { status: 'failed', error: error instanceof Error ? error.message : String(error) } };
  } finally {
    for (const session of sessions.values()) await session.peer.stop();
  }
}
