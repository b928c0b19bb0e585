#!/usr/bin/env node
// The `kura` command's entry point. It turns on Node's on-disk compile cache (modules after type
// stripping and compilation, keyed by their content and Node's version, under the system temp
// directory; NODE_COMPILE_CACHE=DIR moves it, NODE_DISABLE_COMPILE_CACHE=1 turns it off) before
// loading the CLI: every role is its own process, and loading ~30,000 lines of TypeScript cost
// each start about 1.4 s of CPU, 0.6 s with the cache warm. A cache that cannot be written only
// costs that time again: it never stops the command.
import { enableCompileCache } from 'node:module';

enableCompileCache();
await import('../cli/program.ts');
