/**
 * Prometheus metrics of one gateway process. A registry per process (not prom-client's global
 * one), so several gateways in one test process do not collide.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly licenceVerifications = new Counter({
    name: 'gateway_licence_verifications_total',
    help: 'E-licences verified, by verdict and where they came from (a department, or the verify API)',
    labelNames: ['verdict', 'source'] as const,
    registers: [this.registry],
  });

  readonly circuitState = new Gauge({
    name: 'gateway_circuit_state',
    help: 'Circuit breaker per department: 0 closed, 1 half-open (probing), 2 open',
    labelNames: ['department'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'gateway_' });
  }
}
