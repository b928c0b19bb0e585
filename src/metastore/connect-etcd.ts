// Connects an EtcdMetaStore, loading its module (and with it etcd3, gRPC and their protobuf
// descriptors) only when a command actually talks to etcd. Every `kura` subcommand is registered
// in one process, so a static import made `kura serve`, which never uses etcd, carry ~10 MiB of
// etcd client objects in its heap: memory that every major garbage collection marks again (a
// large share of a Put Blob's CPU is collector work, bench/README.md "Put Blob CPU, third pass").
import type { EtcdMetaStore, EtcdMetaStoreOptions } from './etcd-meta-store.ts';

export async function connectEtcd(options: EtcdMetaStoreOptions): Promise<EtcdMetaStore> {
  const { EtcdMetaStore: Store } = await import('./etcd-meta-store.ts');
  return Store.connect(options);
}
