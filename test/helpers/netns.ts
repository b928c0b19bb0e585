// Hosts for multi-host cluster tests: Linux network namespaces (`ip netns`, iproute2; run as root)
// joined by one bridge, each with its own address on a private 10.x.y.0/24, so every role has a
// distinct address and one host can be cut off from the others and healed.
//
//   root namespace (the test process, its SDK clients)   knt<pid>: 10.x.y.254
//        │ veth
//   switch namespace kura-nt-<pid>-sw: bridge br0 ── up0, p1 … pN
//        │ veth (one per host)
//   host namespace kura-nt-<pid>-<name>: eth0 10.x.y.<i>, lo
//
// cut(host) sets the switch side of the host's veth down: the host's eth0 loses its carrier but
// keeps its address and routes, so processes on the host still reach each other (its own address
// and loopback), while no packet leaves or enters the host — a pulled cable, not a reset: open TCP
// connections get no FIN or RST, they just stop. heal(host) sets the port up again. (Neither
// iptables nor nft is installed here; the link is the switch.) The bridge lives in its own
// namespace, so the root namespace gains only one veth with one /24 route.
//
// Invariants: every name carries the test process's pid; x.y is derived from it and skipped if the
// root namespace already has an address in that /24. destroy() kills what still runs in this run's
// namespaces (by pid), then removes them and the root veth; create() first does the same for
// leftovers of earlier runs whose process is gone (a crashed run), and never touches a live run's.
// Fault model: an ip command that fails throws with its stderr (the test fails loudly; a machine
// without iproute2 or root is not skipped). Processes are started by the caller
// (`commandIn(namespace, argv)`, e.g. RoleProcess.launch) and should be stopped before destroy().
import { execFile } from 'node:child_process';
import { after } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const namespacePrefix = 'kura-nt-';
const rootLinkPrefix = 'knt';
const hostsMax = 200;
const commandTimeoutMs = 30_000;

export interface NetnsHost {
  readonly name: string;
  /** The namespace to run the host's processes in (`ip netns exec <namespace> …`). */
  readonly namespace: string;
  /** The host's IPv4 address (eth0). */
  readonly address: string;
}

/** argv that runs `argv` inside a namespace: `ip netns exec` execs it (same pid, signals reach it). */
export function commandIn(namespace: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', namespace, ...argv];
}

async function ip(args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', [...args], { timeout: commandTimeoutMs });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim() === '' ? String(error) : stderr.trim()}`, { cause: error });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills every process inside a namespace (by pid), then deletes it. */
async function deleteNamespace(namespace: string): Promise<void> {
  const pids = (await ip(['netns', 'pids', namespace]).catch(() => '')).split('\n').map(Number).filter((pid) => pid > 0);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await ip(['netns', 'del', namespace]).catch(() => '');
}

/** Removes namespaces and root links of earlier runs whose test process is gone. */
async function removeLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  for (const line of (await ip(['netns', 'list'])).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const match = new RegExp(`^${namespacePrefix}(\\d+)-`).exec(name);
    if (match === null || pidAlive(Number(match[1]))) continue;
    await deleteNamespace(name);
    removed.push(name);
  }
  for (const line of (await ip(['-o', 'link', 'show'])).split('\n')) {
    const match = new RegExp(`^\\d+: (${rootLinkPrefix}(\\d+))[@:]`).exec(line);
    if (match === null || pidAlive(Number(match[2]))) continue;
    await ip(['link', 'del', match[1] ?? '']).catch(() => '');
    removed.push(match[1] ?? '');
  }
  return removed;
}

/** A /24 for this pid that no address of the root namespace is in. */
async function chooseSubnet(pid: number): Promise<string> {
  const taken = await ip(['-4', '-o', 'addr', 'show']);
  for (let attempt = 0; attempt < 256; attempt++) {
    const second = 64 + (Math.floor(pid / 256) + attempt) % 128;
    const subnet = `10.${second}.${pid % 256}`;
    if (!taken.includes(` ${subnet}.`)) return subnet;
  }
  throw new Error('no free 10.x.y.0/24 for the test hosts');
}

export class NetnsLab {
  /** The root namespace's address on the hosts' network (the test's clients connect from it). */
  readonly clientAddress: string;
  /** Namespaces and links of earlier runs removed at create(). */
  readonly leftoversRemoved: readonly string[];
  private readonly subnet: string;
  private readonly prefix: string;
  private readonly switchNamespace: string;
  private readonly rootLink: string;
  private readonly hosts = new Map<string, NetnsHost & { readonly port: string }>();
  private readonly cutHosts = new Set<string>();
  private destroyed = false;

  private constructor(subnet: string, leftovers: readonly string[]) {
    this.prefix = `${namespacePrefix}${process.pid}-`;
    this.switchNamespace = `${this.prefix}sw`;
    this.rootLink = `${rootLinkPrefix}${process.pid}`;
    this.clientAddress = `${subnet}.254`;
    this.leftoversRemoved = leftovers;
    this.subnet = subnet;
  }

  /** Builds the switch and one namespace per host name (letters, digits, -; at most 200). */
  static async create(hostNames: readonly string[]): Promise<NetnsLab> {
    if (hostNames.length > hostsMax) throw new Error(`at most ${hostsMax} hosts`);
    const leftovers = await removeLeftovers();
    const lab = new NetnsLab(await chooseSubnet(process.pid), leftovers);
    try {
      await lab.build(hostNames);
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  host(name: string): NetnsHost {
    const host = this.hosts.get(name);
    if (host === undefined) throw new Error(`no test host ${name}`);
    return host;
  }

  isCut(name: string): boolean {
    return this.cutHosts.has(name);
  }

  /** Cuts a host off: no packet in or out; its processes keep running and reach each other. */
  async cut(name: string): Promise<void> {
    await ip(['-n', this.switchNamespace, 'link', 'set', this.hostPort(name), 'down']);
    this.cutHosts.add(name);
  }

  async heal(name: string): Promise<void> {
    await ip(['-n', this.switchNamespace, 'link', 'set', this.hostPort(name), 'up']);
    this.cutHosts.delete(name);
  }

  /** Kills what still runs in this run's namespaces, removes them and the root link. Safe twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const host of this.hosts.values()) await deleteNamespace(host.namespace);
    await deleteNamespace(this.switchNamespace);
    await ip(['link', 'del', this.rootLink]).catch(() => '');
  }

  private hostPort(name: string): string {
    const host = this.hosts.get(name);
    if (host === undefined) throw new Error(`no test host ${name}`);
    return host.port;
  }

  private async build(hostNames: readonly string[]): Promise<void> {
    const sw = this.switchNamespace;
    await ip(['netns', 'add', sw]);
    await ip(['-n', sw, 'link', 'set', 'lo', 'up']);
    await ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    await ip(['link', 'add', this.rootLink, 'type', 'veth', 'peer', 'name', 'up0', 'netns', sw]);
    await ip(['-n', sw, 'link', 'set', 'up0', 'master', 'br0', 'up']);
    await ip(['addr', 'add', `${this.clientAddress}/24`, 'dev', this.rootLink]);
    await ip(['link', 'set', this.rootLink, 'up']);
    for (const [index, name] of hostNames.entries()) {
      if (!/^[a-z0-9-]{1,20}$/.test(name) || this.hosts.has(name)) throw new Error(`bad or repeated host name ${JSON.stringify(name)}`);
      const host = { name, namespace: `${this.prefix}${name}`, address: `${this.subnet}.${index + 1}`, port: `p${index + 1}` };
      this.hosts.set(name, host);
      await ip(['netns', 'add', host.namespace]);
      await ip(['-n', host.namespace, 'link', 'set', 'lo', 'up']);
      await ip(['link', 'add', 'eth0', 'netns', host.namespace, 'type', 'veth', 'peer', 'name', host.port, 'netns', sw]);
      await ip(['-n', sw, 'link', 'set', host.port, 'master', 'br0', 'up']);
      await ip(['-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
      await ip(['-n', host.namespace, 'link', 'set', 'eth0', 'up']);
    }
  }
}

/** Call inside describe(): registers an after() hook that destroys the lab (after the hooks that
 * stop the processes, registered earlier, have run); the returned function builds it. */
export function useNetnsLab(hostNames: readonly string[]): () => Promise<NetnsLab> {
  let lab: NetnsLab | null = null;
  after(async () => {
    await lab?.destroy();
  });
  return async () => {
    lab = await NetnsLab.create(hostNames);
    return lab;
  };
}
