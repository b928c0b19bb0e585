// Canary builds against the simulator (TESTING.md, "Canary builds"; docs/simulation.md): each
// canary is a test-only switch that breaks one promise on purpose; the simulator, run on a fixed
// set of seeds, must fail with it. First the same seeds run with no canary and must all pass
// (otherwise a "caught" canary would prove nothing). Prints "canaries caught / total" and exits
// non-zero unless every canary was caught. The fsync canary runs with a higher chance of a stamp
// power loss per phase (--stamp-power-loss, default 0.5; 0.08 in ordinary runs): it is the fault
// that destroys exactly what was never fsync'd, so it is what makes a missing fsync visible, and
// it is honest at any rate (1 seed of 8 caught it at 0.08). The others run at the ordinary rate:
// a phase with a stamp power loss has no replica faults, which are what catch them. The baseline
// passes at every rate a canary uses.
//
//   node sim/canaries.ts [--seeds N] [--root R] [--stamp-power-loss P]
import { spawn } from 'node:child_process';
import { Command } from 'commander';

interface Canary {
  readonly name: string;
  readonly environment: Readonly<Record<string, string>>;
  /** Runs with --stamp-power-loss (the CLI's rate) instead of the ordinary rate. */
  readonly powerLossHeavy?: boolean;
}

/** The ordinary stamp power loss rate (sim/simulation.ts defaultSimOptions). */
const ordinaryPowerLoss = '0.08';

export const canaries: readonly Canary[] = [
  { name: 'fsync is a no-op', environment: { KURA_CANARY_SKIP_FSYNC: '1' }, powerLossHeavy: true },
  { name: 'CRC verification skipped', environment: { KURA_CANARY_SKIP_CRC: '1' } },
  { name: 'node protection check skipped (release tokens ignore live replicas)', environment: { KURA_CANARY_SKIP_PROTECTION: '1' } },
  { name: 'ack before the last replica', environment: { KURA_CANARY_ACK_BEFORE_LAST_REPLICA: '1' } },
];

/** Canaries that belong in code not yet switchable: listed so the total is honest. */
export const pendingCanaries: readonly string[] = [];

interface SweepOutcome {
  readonly exitCode: number | null;
  readonly failedRuns: number;
  readonly runs: number;
}

/** Runs `sim/run.ts --seeds N --root R --json` in a child with `environment`. */
export function sweep(options: { seeds: number; root: string; stampPowerLoss: string; environment: Readonly<Record<string, string>> }): Promise<SweepOutcome> {
  return new Promise((resolve, reject) => {
    const script = new URL('./run.ts', import.meta.url).pathname;
    const child = spawn(process.execPath, [script, '--seeds', String(options.seeds), '--root', options.root, '--stamp-power-loss', options.stampPowerLoss, '--json'], {
      env: { ...process.env, ...options.environment }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (exitCode) => {
      const figures = /^\{.*\}$/m.exec(output)?.[0];
      const parsed: unknown = figures === undefined ? null : JSON.parse(figures);
      const totals = typeof parsed === 'object' && parsed !== null ? parsed as { runs?: unknown; failedSeeds?: unknown } : {};
      const runs = typeof totals.runs === 'number' ? totals.runs : 0;
      const failedRuns = Array.isArray(totals.failedSeeds) ? totals.failedSeeds.length : 0;
      resolve({ exitCode, failedRuns, runs });
    });
  });
}

async function main(): Promise<void> {
  const cli = new Command('canaries').option('--seeds <count>', 'seeds per canary', '8').option('--root <seed>', 'root seed of the seed set', '28122012')
    .option('--stamp-power-loss <p>', 'chance per phase of a stamp power loss', '0.5').parse().opts<{ seeds: string; root: string; stampPowerLoss: string }>();
  const seeds = Number(cli.seeds);
  const rateOf = (canary: Canary): string => (canary.powerLossHeavy === true ? cli.stampPowerLoss : ordinaryPowerLoss);
  process.stdout.write(`root seed ${cli.root}, ${seeds} seeds per canary\n`);
  for (const stampPowerLoss of new Set(canaries.map(rateOf))) {
    const baseline = await sweep({ seeds, root: cli.root, stampPowerLoss, environment: {} });
    process.stdout.write(`baseline (no canary, stamp power loss ${stampPowerLoss} per phase): ${baseline.runs - baseline.failedRuns} / ${baseline.runs} runs pass\n`);
    if (baseline.exitCode !== 0 || baseline.runs !== seeds) {
      process.stdout.write('the baseline must pass on every seed before canaries mean anything; replay its failing seeds with npm run sim\n');
      process.exitCode = 1;
      return;
    }
  }
  let caught = 0;
  for (const canary of canaries) {
    const outcome = await sweep({ seeds, root: cli.root, stampPowerLoss: rateOf(canary), environment: canary.environment });
    const wasCaught = outcome.exitCode !== 0 && outcome.failedRuns > 0;
    if (wasCaught) caught += 1;
    process.stdout.write(`${wasCaught ? 'caught' : 'MISSED'}: ${canary.name} (${outcome.failedRuns} / ${outcome.runs} runs failed)\n`);
  }
  process.stdout.write(`canaries caught / total: ${caught} / ${canaries.length}${pendingCanaries.length > 0 ? ` (pending, not yet switchable: ${pendingCanaries.join('; ')})` : ''}\n`);
  if (caught !== canaries.length) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) await main();
