// Registers every `kura` subcommand. Each command's action lives in its own module under cli/.
import type { Command } from 'commander';
import { registerExtentNodeCommand } from './extent-node-command.ts';
import { registerPartitionManagerCommand } from './partition-manager-command.ts';
import { registerPartitionServerCommand } from './partition-server-command.ts';
import { registerStreamManagerCommand } from './stream-manager-command.ts';

export function registerCommands(program: Command): void {
  registerExtentNodeCommand(program);
  registerStreamManagerCommand(program);
  registerPartitionServerCommand(program);
  registerPartitionManagerCommand(program);
  program
    .command('serve')
    .description('Run a whole stamp in one process (embedded default). Not implemented yet: see issue 4.')
    .action(() => {
      process.stderr.write('kura serve: the blob service is not built yet (issue 4); the stream layer is.\n');
      process.exitCode = 2;
    });
}
