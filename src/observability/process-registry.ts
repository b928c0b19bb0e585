// The metrics registry of one Kura process: its own Registry (never prom-client's global one, so
// tests can run several in one process) with the standard process and Node.js runtime metrics
// (process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_seconds, ...)
// that the alerts on resource exhaustion and a stalled event loop read (docs/metrics.md).
//
// Invariants: one registry per process role; the component metrics (ExtentNodeMetrics,
// StreamManagerMetrics) register into it. Fault model: none of its own; collectors only read.
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createProcessRegistry(options: { readonly role: string }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role: options.role });
  collectDefaultMetrics({ register: registry });
  return registry;
}
