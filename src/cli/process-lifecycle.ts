// Shared pieces of every long-running `kura` role process: waiting for a shutdown signal and
// validating numeric flags. One copy, so every role shuts down and rejects bad flags the same way.
import type { Logger } from 'pino';
import { isStorageError, StorageError } from '../util/errors.ts';

/** Resolves on the first SIGTERM or SIGINT; a second one exits the process at once. Call it before
 * the process logs that it listens: a supervisor (dev-cluster, a test) may send SIGTERM the moment it
 * reads that line, and a SIGTERM with no handler installed kills the process without its stop. */
export function waitForSignal(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (received) {
        logger.warn({ signal }, 'second signal during shutdown; exiting now');
        process.exit(1);
      }
      received = true;
      logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** Parses a flag that must be a positive safe integer; a clear config.invalid error otherwise. */
export function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new StorageError('config.invalid', `${flag} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

/** Runs a command's action; an operating error (a bad flag, a port in use, a locked directory)
 * prints "kura <command>: <reason>" on stderr and sets the exit code; anything else propagates
 * (an assertion or a bug crashes loudly at the top level). */
export async function reportingErrors(command: string, action: () => Promise<void>, exitCode = 1): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (!isStorageError(error)) throw error;
    process.stderr.write(`kura ${command}: ${error.message}\n`);
    process.exitCode = exitCode;
  }
}
