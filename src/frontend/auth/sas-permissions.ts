// Which SAS permission letters grant which operation, and which account-SAS resource type
// (s service, c container, o object) an operation is, after Azure's tables in "Create an
// account SAS" and "Create a service SAS". One exhaustive switch: a new operation does not
// compile until it is given its permissions.
//
// Invariants: null means "no SAS may perform this operation" (user delegation keys, Unsupported).
// Fault model: none (pure tables).

import type { Operation } from '../operation.ts';

export interface PermissionNeed {
  /** Any one of these letters grants the operation. */
  readonly anyOf: string;
}

const need = (anyOf: string): PermissionNeed => ({ anyOf });

export function permissionsFor(op: Operation): PermissionNeed | null {
  switch (op.kind) {
    case 'GetBlobServiceProperties': case 'GetServiceStats': case 'GetAccountInformation':
    case 'GetContainerProperties': case 'GetContainerMetadata': case 'GetContainerACL':
    case 'GetBlob': case 'GetBlobProperties': case 'GetBlobMetadata': case 'GetBlockList':
      return need('r');
    case 'ListContainers': case 'ListBlobs': return need('l');
    case 'FindBlobsByTags': return need('f');
    case 'GetBlobTags': case 'SetBlobTags': return need('t');
    case 'SetBlobServiceProperties': case 'SetContainerMetadata': case 'SetContainerACL':
    case 'PutBlock': case 'PutBlockFromURL': case 'AbortCopyBlob': case 'SetBlobProperties':
    case 'SetBlobMetadata': case 'SealAppendBlob': case 'SetBlobTier':
      return need('w');
    case 'CreateContainer': case 'PutBlob': case 'PutBlockList': case 'CopyBlob':
    case 'CopyBlobFromURL': case 'CreateAppendBlob': case 'SnapshotBlob':
      return need('cw');
    case 'AppendBlock': return need('aw');
    case 'DeleteContainer': case 'DeleteBlob': return need('d');
    case 'LeaseContainer': case 'LeaseBlob':
      return need(op.lease.action === 'break' || op.lease.action === 'release' ? 'wd' : 'w');
    case 'GetUserDelegationKey': case 'Unsupported': return null;
  }
}

/** The account-SAS resource type an operation needs in srt. */
export function resourceTypeOf(op: Operation): 's' | 'c' | 'o' {
  if ('blob' in op) return 'o';
  if (op.kind === 'FindBlobsByTags') return op.container === undefined ? 's' : 'c';
  if ('container' in op) return 'c';
  return 's';
}
