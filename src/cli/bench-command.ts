// `kura bench`: the blob benchmark of `npm run bench` against a stamp that is already running
// (bench/blob/running-bench.ts does the work; it is loaded only when this command runs, with the
// official SDK it drives). Prints the tables and saves bench/results/blob-<profile>-<date>.json.
import type { Command } from 'commander';
import { StorageError } from '../util/errors.ts';
import { positiveInteger, reportingErrors } from './process-lifecycle.ts';

interface BenchFlags {
  readonly connectionString?: string;
  readonly data?: string;
  readonly pid: readonly string[];
  readonly name: string;
  readonly profile: string;
  readonly workloads?: string;
  readonly loopSeconds?: string;
  readonly compare: string;
  readonly out?: string;
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('Benchmark a running stamp (kura serve, a dev cluster, any Azure Blob endpoint) with the workloads, clients and tables of npm run bench, beside local peers for the ratios (default: the null server, the client\'s own ceiling). Never kills the stamp: no kill -9 check on it. Saves bench/results/blob-<profile>-<date>.json and .svg.')
    .option('--connection-string <cs>', 'the stamp\'s connection string (default: $AZURE_STORAGE_CONNECTION_STRING)')
    .option('--data <dir>', 'a `kura dev-cluster --data` directory: connection string and every process to sample from its cluster.json')
    .option('--pid <pid>', 'a process of the stamp on this machine whose CPU and memory to sample (repeatable)', (value: string, list: string[]) => [...list, value], [])
    .option('--name <name>', 'the stamp\'s name in the tables', 'kura-running')
    .option('--profile <profile>', 'quick (< 5 min) or full (< 30 min)', 'quick')
    .option('--workloads <list>', 'only these workloads, comma-separated: put,get,big,list,mixed (default: all of the profile\'s)')
    .option('--loop-seconds <s>', 'time bound of each put/get loop (default: the profile\'s)')
    .option('--compare <peers>', 'local peers run in the same run, comma-separated (null-server, azurite-disk, azurite-memory, kura-1disk, kura-3disk, ...), or none', 'null-server')
    .option('--out <dir>', 'where to save the JSON and SVG (default: bench/results of this checkout)')
    .action(async (flags: BenchFlags) => {
      await reportingErrors('bench', async () => {
        const pids = flags.pid.map((text) => positiveInteger(text, '--pid'));
        const { runRunningBench } = await import('../../bench/blob/running-bench.ts');
        let ran: boolean;
        try {
          ran = await runRunningBench({ ...flags, pids });
        } catch (error) {
          throw new StorageError('config.invalid', error instanceof Error ? error.message : String(error));
        }
        if (!ran) process.exitCode = 1;
      });
    });
}
