// CPU profile of an already running Node process, taken through its inspector: SIGUSR1 makes a
// Node process open its inspector on 127.0.0.1:9229 (Node's documented behaviour), the Chrome
// DevTools protocol's Profiler domain starts and stops a sampling profile, and the result is the
// same .cpuprofile shape `node --cpu-prof` writes (cpu-profile.ts summarises both). Used on one
// role of a dev cluster, whose processes dev-cluster starts itself, so no command line can be
// changed. One process at a time (one port); the inspector stays open in the target afterwards,
// so profile a stamp that is thrown away after the run. Loopback only.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CpuProfile } from './cpu-profile.ts';

const inspectorPort = 9229;
const openTimeoutMs = 10_000;
const pollMs = 100;

interface DevToolsSession {
  send(method: string, params?: Record<string, unknown>): Promise<unknown>;
  close(): void;
}

async function debuggerUrl(timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json() as { webSocketDebuggerUrl?: string }[];
      const url = targets[0]?.webSocketDebuggerUrl;
      if (url !== undefined) return url;
    } catch {
      // Not listening yet.
    }
    if (performance.now() > deadline) throw new Error(`no inspector on 127.0.0.1:${inspectorPort} within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

async function connect(url: string): Promise<DevToolsSession> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
    const waiter = message.id === undefined ? undefined : pending.get(message.id);
    if (waiter === undefined || message.id === undefined) return;
    pending.delete(message.id);
    if (message.error !== undefined) waiter.reject(new Error(message.error.message));
    else waiter.resolve(message.result);
  });
  return {
    send: (method, params = {}) => new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    }),
    close: () => socket.close(),
  };
}

/** Runs `work` while process `pid` is sampled every `intervalUs`; returns work's value and the profile. */
export async function profileProcess<T>(pid: number, work: () => Promise<T>, intervalUs = 1000): Promise<{ value: T; profile: CpuProfile }> {
  process.kill(pid, 'SIGUSR1');
  const session = await connect(await debuggerUrl(openTimeoutMs));
  try {
    await session.send('Profiler.enable');
    await session.send('Profiler.setSamplingInterval', { interval: intervalUs });
    await session.send('Profiler.start');
    const value = await work();
    const stopped = await session.send('Profiler.stop') as { profile: CpuProfile };
    return { value, profile: stopped.profile };
  } finally {
    session.close();
  }
}
