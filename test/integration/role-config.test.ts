// Configuration of the role processes (docs/cluster.md, "Configuration"): real `kura` processes
// given bad configuration files and flags must exit non-zero at once, before touching etcd or a
// disk, with one line per problem naming the field, where its value came from and a valid form.
// etcd unreachable at start: exit 1 naming it. A good file plus a flag that overrides one of its
// fields starts the role with the flag's value; SIGTERM while it waits for the cluster exits 0.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { startEtcd } from '../helpers/etcd.ts';
import { runKura } from '../helpers/kura-serve.ts';
import { RoleProcess, adminGet, killAllRoles } from '../helpers/role-process.ts';

describe('role configuration files and flags', () => {
  it('bad files and flags exit 1 naming every bad field; flags override the file', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'kura-role-config-'));
    try {
      const bad = join(root, 'controller.json');
      await writeFile(bad, JSON.stringify({ etcd: 'etcd-host:2379', listen: '7000', replicas: 0, leaseTtlMs: 500, lisen: '127.0.0.1:1' }));
      const controller = await runKura(['controller', '--config', bad, '--controller-id', 'has space']);
      t.diagnostic(`kura controller, bad file: exit ${controller.code}:\n${controller.stderr.trim()}`);
      assert.equal(controller.code, 1);
      for (const expected of [
        `etcd.0 (from ${bad}): expected an etcd client URL such as http://127.0.0.1:2379`,
        `listen (from ${bad}): expected host:port, e.g. 127.0.0.1:7000`,
        'controllerId (from --controller-id): expected 1 to 64 letters, digits',
        `replicas (from ${bad}): expected a positive integer; got 0`,
        `leaseTtlMs (from ${bad}): etcd leases are whole seconds`,
        'unknown field "lisen"; known fields: etcd, listen, controllerId',
      ]) assert.ok(controller.stderr.includes(expected), `stderr names: ${expected}`);

      const missing = await runKura(['frontend', '--listen', '127.0.0.1:0']);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /etcd: missing; give --etcd <urls> or "etcd" in the config file/);

      const cacheTooBig = await runKura(['frontend', '--etcd', 'http://127.0.0.1:9', '--listen', '127.0.0.1:0', '--data-cache-mib', '2000']);
      assert.equal(cacheTooBig.code, 1);
      assert.match(cacheTooBig.stderr, /dataCacheMib \(from --data-cache-mib\): .*<=1024/);

      const notJson = join(root, 'node.json5');
      await writeFile(notJson, '{ listen: 1 }');
      const node = await runKura(['extent-node', '--config', notJson]);
      assert.equal(node.code, 1);
      assert.match(node.stderr, /kura extent-node: config file .* is not JSON/);

      const absent = await runKura(['partition-server', '--config', join(root, 'absent.json')]);
      assert.equal(absent.code, 1);
      assert.match(absent.stderr, /cannot read config file .*absent\.json: ENOENT/);
      t.diagnostic('missing field, non-JSON file and absent file: exit 1 with the reason');

      // etcd unreachable: exit 1 naming it, bounded (the admin port must not keep the process up).
      const unreachable = await runKura(['frontend', '--etcd', 'http://127.0.0.1:9', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], 30_000);
      assert.equal(unreachable.code, 1);
      assert.match(unreachable.stderr, /^kura frontend: /m);
      t.diagnostic(`etcd unreachable: exit 1: ${unreachable.stderr.trim().split('\n')[0] ?? ''}`);

      // A good file; --listen on the command line wins over the file's (a port another socket holds).
      const etcd = await startEtcd();
      const holder = createServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      try {
        const held = (holder.address() as AddressInfo).port;
        const good = join(root, 'frontend.json');
        await writeFile(good, JSON.stringify({ etcd: etcd.endpoints, listen: `127.0.0.1:${held}`, admin: '127.0.0.1:0', logLevel: 'info' }));
        const frontend = await RoleProcess.start('frontend', ['frontend', '--config', good, '--listen', '127.0.0.1:0'], 'admin server listening');
        const readyz = await adminGet(frontend.addressOf('admin server listening'), '/readyz');
        assert.equal(readyz.status, 503, 'not ready: no controller has made a partition map');
        assert.match(JSON.stringify(readyz.body), /waiting for the partition map/);
        assert.equal(await frontend.stop(), 0, 'SIGTERM while it waits for the cluster exits 0');
        t.diagnostic('a file plus an overriding flag starts (readyz 503 waiting for the map); SIGTERM during the wait exits 0');
      } finally {
        holder.close();
        await killAllRoles();
        await etcd.stop();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
