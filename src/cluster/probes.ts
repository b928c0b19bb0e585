// Health probes of a stamp's processes, shared by `kura dev-cluster` (readiness during start, the
// balancer's liveness) and `kura status`: a role's admin /readyz, an etcd member's /health, or a
// plain TCP connect for a port with nothing else to ask. Every probe is bounded by timeoutMs and
// answers, never throws: unreachable is an answer ('down').
import { createConnection } from 'node:net';

export type ProbeState = 'ready' | 'not-ready' | 'down';

export interface ProbeResult {
  readonly state: ProbeState;
  /** The process's own reason (/readyz), or why it could not be asked. */
  readonly reason: string;
}

/** Bytes of a probe answer read at most (a /readyz answer is a few dozen). */
const answerBytesMax = 4096;

/** GET http://<admin>/readyz: 200 ready, 503 not ready (with the process's reason). */
export async function probeReadyz(adminAddress: string, timeoutMs: number): Promise<ProbeResult> {
  const answer = await httpGet(`http://${adminAddress}/readyz`, timeoutMs);
  if (answer.kind === 'error') return { state: 'down', reason: answer.reason };
  const reason = readinessReason(answer.body) ?? `HTTP ${answer.status}`;
  if (answer.status === 200) return { state: 'ready', reason };
  if (answer.status === 503) return { state: 'not-ready', reason };
  return { state: 'down', reason: `/readyz answered HTTP ${answer.status}` };
}

/** GET <clientUrl>/health of an etcd member: {"health":"true"} once it is part of a quorum. */
export async function probeEtcd(clientUrl: string, timeoutMs: number): Promise<ProbeResult> {
  const answer = await httpGet(`${clientUrl}/health`, timeoutMs);
  if (answer.kind === 'error') return { state: 'down', reason: answer.reason };
  const healthy = answer.status === 200 && /"health"\s*:\s*"true"/.test(answer.body);
  return healthy ? { state: 'ready', reason: 'healthy member of a quorum' } : { state: 'not-ready', reason: `unhealthy: ${answer.body.trim().slice(0, 200)}` };
}

/** A TCP connect to host:port: 'ready' if it is accepted. */
export function probeTcp(address: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = createConnection(hostPort(address));
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ state: 'down', reason: `no TCP connect within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ state: 'ready', reason: 'accepts connections' }));
    socket.once('error', (error) => done({ state: 'down', reason: error.message }));
  });
}

/** "host:port" (IPv6 in brackets) → net.connect options. */
export function hostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
}

type HttpAnswer = { readonly kind: 'answer'; readonly status: number; readonly body: string } | { readonly kind: 'error'; readonly reason: string };

async function httpGet(url: string, timeoutMs: number): Promise<HttpAnswer> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await response.text()).slice(0, answerBytesMax);
    return { kind: 'answer', status: response.status, body };
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : null;
    return { kind: 'error', reason: cause ?? (error instanceof Error ? error.message : String(error)) };
  }
}

function readinessReason(body: string): string | null {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'reason' in parsed && typeof parsed.reason === 'string') return parsed.reason;
  } catch {
    // not the admin server's JSON: fall back to the status code
  }
  return null;
}
