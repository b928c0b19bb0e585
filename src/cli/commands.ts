// Registers every `kura` subcommand. Each command's action lives in its own module under cli/.
import type { Command } from 'commander';
import { registerAccountCommand } from './account-command.ts';
import { registerBenchCommand } from './bench-command.ts';
import { registerDevClusterCommand } from './dev-cluster-command.ts';
import { registerControllerCommand } from './controller-command.ts';
import { registerExtentNodeCommand } from './extent-node-command.ts';
import { registerFrontendCommand } from './frontend-command.ts';
import { registerPartitionManagerCommand } from './partition-manager-command.ts';
import { registerPartitionServerCommand } from './partition-server-command.ts';
import { registerServeCommand } from './serve-command.ts';
import { registerStatusCommand } from './status-command.ts';
import { registerStreamManagerCommand } from './stream-manager-command.ts';

export function registerCommands(program: Command): void {
  registerServeCommand(program);
  registerAccountCommand(program);
  registerExtentNodeCommand(program);
  registerStreamManagerCommand(program);
  registerPartitionServerCommand(program);
  registerPartitionManagerCommand(program);
  registerDevClusterCommand(program);
  registerStatusCommand(program);
  registerControllerCommand(program);
  registerFrontendCommand(program);
  registerBenchCommand(program);
}
