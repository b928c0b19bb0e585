// The `kura` command line (loaded by src/main/kura.ts): one entry point for every role and tool.
// It only parses arguments and wires components together; the logic lives in the layers below
// (STYLE.md principle 6).
import { Command } from 'commander';
import { AssertionFailure } from '../util/assert.ts';
import { registerCommands } from './commands.ts';

const exitCodeAssertion = 70;

process.on('uncaughtException', (error) => {
  process.stderr.write(`kura: fatal: ${error.stack ?? String(error)}\n`);
  process.exit(error instanceof AssertionFailure ? exitCodeAssertion : 1);
});

const program = new Command();
program
  .name('kura')
  .description('Kura: durable, replicated storage that speaks the Azure Storage REST APIs.')
  .version('0.1.0');
registerCommands(program);
await program.parseAsync(process.argv);
