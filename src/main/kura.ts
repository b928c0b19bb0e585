#!/usr/bin/env node
// The `kura` command's entry point. It turns on Node's on-disk compile cache (modules after type
// stripping and compilation, keyed by their content and Node's version, under the system temp
// directory; NODE_COMPILE_CACHE=DIR moves it, NODE_DISABLE_COMPILE_CACHE=1 turns it off) before
// loading the CLI: every role is its own process, and loading ~30,000 lines of TypeScript cost
// each start about 1.4 s of CPU, 0.6 s with the cache warm. A cache that cannot be written only
// costs that time again: it never stops the command.
// It also puts a floor under V8's old-generation limit (util/heap-limit-floor.ts, constants.ts
// heapLimitFloorBytes; KURA_HEAP_FLOOR_MIB=N sets it in MiB, 0 turns it off): every role takes
// request or append bodies, whose buffers otherwise start a full GC every ~25 MiB.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { heapLimitFloorBytes } = await import('../constants.ts');
const { HeapLimitFloor } = await import('../util/heap-limit-floor.ts');
const floorMib = process.env.KURA_HEAP_FLOOR_MIB;
const floorBytes = floorMib === undefined || floorMib === '' ? heapLimitFloorBytes : Number(floorMib) * 1024 * 1024;
if (!Number.isSafeInteger(floorBytes) || floorBytes < 0) throw new Error(`KURA_HEAP_FLOOR_MIB must be a whole number of MiB, not ${floorMib}`);
if (floorBytes > 0) new HeapLimitFloor(floorBytes).start();
await import('../cli/program.ts');
