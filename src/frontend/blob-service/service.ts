// Service-level operations (docs/blob-schema.md, "Service properties"): Get / Set Blob Service
// Properties (one row per account; Set replaces only the elements present), Get Service Stats,
// Get Account Information; and the lookups the front end's CORS and authoriser need (CORS rules,
// a container's public access, a stored access policy), all read from the same rows.
//
// Invariants: the stored document is validated with a schema when read; defaults are Azure's
// (everything off, no CORS rules).
// Fault model: as context.ts.

import { z } from 'zod';
import type { StoredAccessPolicy } from '../auth/sas.ts';
import type { AccountInformation, BlobServiceProperties, CorsRule, PublicAccess, ServiceStats } from '../model.ts';
import { putOp, readContainer, withRetry, type BlobServiceContext } from './context.ts';
import { servicePropertiesKey } from './keys.ts';
import { decodeJsonColumn, jsonColumn } from './records.ts';

const retention = z.object({ enabled: z.boolean(), days: z.number().optional() });
const metrics = z.object({ version: z.string(), enabled: z.boolean(), includeApis: z.boolean().optional(), retentionPolicy: retention });
const propertiesSchema = z.object({
  logging: z.object({ version: z.string(), read: z.boolean(), write: z.boolean(), delete: z.boolean(), retentionPolicy: retention }).optional(),
  hourMetrics: metrics.optional(),
  minuteMetrics: metrics.optional(),
  cors: z.array(z.object({
    allowedOrigins: z.array(z.string()), allowedMethods: z.array(z.string()), allowedHeaders: z.array(z.string()),
    exposedHeaders: z.array(z.string()), maxAgeInSeconds: z.number(),
  })).optional(),
  defaultServiceVersion: z.string().optional(),
  deleteRetentionPolicy: retention.optional(),
  staticWebsite: z.object({ enabled: z.boolean(), indexDocument: z.string().optional(), errorDocument404Path: z.string().optional(), defaultIndexDocumentPath: z.string().optional() }).optional(),
});

const off = { enabled: false } as const;
export const defaultServiceProperties: BlobServiceProperties = {
  logging: { version: '1.0', read: false, write: false, delete: false, retentionPolicy: off },
  hourMetrics: { version: '1.0', enabled: false, retentionPolicy: off },
  minuteMetrics: { version: '1.0', enabled: false, retentionPolicy: off },
  cors: [], deleteRetentionPolicy: off, staticWebsite: off,
};

/** Drops keys whose value is undefined (zod's optional output) for exactOptionalPropertyTypes. */
function defined<T extends object>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

async function readProperties(ctx: BlobServiceContext, account: string): Promise<{ row: Awaited<ReturnType<BlobServiceContext['tables']['get']>>; properties: BlobServiceProperties }> {
  const row = await ctx.tables.get(servicePropertiesKey(account));
  const stored = row === null ? undefined : decodeJsonColumn(row, 'properties', propertiesSchema);
  return { row, properties: { ...defaultServiceProperties, ...(stored === undefined ? {} : defined(stored) as BlobServiceProperties) } };
}

export async function getBlobServiceProperties(ctx: BlobServiceContext, account: string): Promise<BlobServiceProperties> {
  return (await readProperties(ctx, account)).properties;
}

export async function setBlobServiceProperties(ctx: BlobServiceContext, account: string, update: BlobServiceProperties): Promise<void> {
  await withRetry(ctx, async () => {
    const { row, properties } = await readProperties(ctx, account);
    const merged: BlobServiceProperties = { ...properties, ...defined(update) };
    await ctx.tables.transact([putOp(servicePropertiesKey(account), jsonColumn('properties', merged), row)]);
  });
}

export function serviceStats(): ServiceStats {
  // No geo-replication yet: there is no secondary to report on.
  return { geoReplication: { status: 'unavailable' } };
}

export function accountInformation(): AccountInformation {
  return { skuName: 'Standard_LRS', accountKind: 'StorageV2', isHierarchicalNamespaceEnabled: false };
}

export async function corsRules(ctx: BlobServiceContext, account: string): Promise<readonly CorsRule[]> {
  return (await readProperties(ctx, account)).properties.cors ?? [];
}

export async function publicAccess(ctx: BlobServiceContext, account: string, container: string): Promise<PublicAccess | null | 'notFound'> {
  const loaded = await readContainer(ctx, account, container);
  return loaded === null ? 'notFound' : loaded.record.publicAccess;
}

export async function storedPolicy(ctx: BlobServiceContext, account: string, container: string, id: string): Promise<StoredAccessPolicy | null> {
  const loaded = await readContainer(ctx, account, container);
  const identifier = loaded?.record.identifiers.find((item) => item.id === id);
  if (identifier === undefined) return null;
  return {
    ...(identifier.start === undefined ? {} : { start: identifier.start }), ...(identifier.expiry === undefined ? {} : { expiry: identifier.expiry }),
    ...(identifier.permission === undefined ? {} : { permission: identifier.permission }),
  };
}
