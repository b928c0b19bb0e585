// A BenchPeer that is one server process on a loopback port with a temporary data directory.
// Azurite, the null server and `kura serve` differ only in the command line they are given,
// so each is a small factory around this class. The port and data directory are chosen once
// at start and kept across kill -9 and restart, which is what the durability check needs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildServer } from './child-server.ts';
import { freeLoopbackPort } from './free-port.ts';
import { devConnectionString, type BenchPeer, type PeerEndpoint, type PeerPersistence } from './peer.ts';
import { readProcessSample, type ProcessSample } from './proc-sample.ts';

export interface LaunchContext {
  readonly port: number;
  readonly dataDirectory: string;
}

export interface ProcessPeerOptions {
  readonly name: string;
  readonly persistence: PeerPersistence;
  /** The server's command line; `command` is spawned directly, without a shell. */
  readonly launch: (context: LaunchContext) => { readonly command: string; readonly args: readonly string[] };
  readonly readyTimeoutMs: number;
  /**
   * A stdout line the server prints once it serves, whose first capture group is its connection
   * string (`kura serve` prints one); without it the peer is ready when its port accepts and
   * the development account's connection string is used.
   */
  readonly connectionStringLine?: RegExp;
  /** A file that gets the server's whole stdout and stderr, appended (ChildServerOptions.outputFile). */
  readonly outputFile?: string;
}

export class ProcessPeer implements BenchPeer {
  readonly name: string;
  readonly persistence: PeerPersistence;
  private readonly options: ProcessPeerOptions;
  private context: LaunchContext | null = null;
  private server: ChildServer | null = null;

  constructor(options: ProcessPeerOptions) {
    this.name = options.name;
    this.persistence = options.persistence;
    this.options = options;
  }

  async start(): Promise<PeerEndpoint> {
    if (this.context !== null) throw new Error(`${this.name} already started`);
    const dataDirectory = await mkdtemp(join(tmpdir(), `kura-bench-${this.name}-`));
    this.context = { port: await freeLoopbackPort(), dataDirectory };
    try {
      return await this.launch();
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async kill9(): Promise<void> {
    await this.server?.kill9();
    this.server = null;
  }

  async restart(): Promise<PeerEndpoint> {
    await this.kill9();
    return this.launch();
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = null;
    const context = this.context;
    this.context = null;
    if (context !== null) await rm(context.dataDirectory, { recursive: true, force: true });
  }

  sample(): ProcessSample {
    return readProcessSample(this.serverPid);
  }

  /** The pid of the process this peer spawned (for a cluster: its supervisor). */
  protected get serverPid(): number {
    if (this.server === null) throw new Error(`${this.name} is not running`);
    return this.server.pid;
  }

  /** The peer's temporary data directory, kept across kill -9 and restart. */
  protected get dataDirectory(): string {
    if (this.context === null) throw new Error(`${this.name} not started`);
    return this.context.dataDirectory;
  }

  private async launch(): Promise<PeerEndpoint> {
    const context = this.context;
    if (context === null) throw new Error(`${this.name} not started`);
    const { command, args } = this.options.launch(context);
    const { connectionStringLine: readyLine, outputFile } = this.options;
    const server = new ChildServer({ command, args, port: context.port, cwd: context.dataDirectory, readyTimeoutMs: this.options.readyTimeoutMs, ...(readyLine === undefined ? {} : { readyLine }), ...(outputFile === undefined ? {} : { outputFile }) });
    await server.start();
    this.server = server;
    return { connectionString: printedConnectionString(server.printedValue, context.port) ?? devConnectionString(context.port), pid: server.pid };
  }
}

/** The connection string a server printed, if it names its blob endpoint on 127.0.0.1:port. */
export function printedConnectionString(printed: string | null, port: number): string | null {
  if (printed === null) return null;
  if (!printed.includes(`BlobEndpoint=http://127.0.0.1:${port}/`)) throw new Error(`the server printed a connection string for another endpoint: ${printed}`);
  return printed;
}
