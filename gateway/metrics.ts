/**
 * Prometheus metrics of one gateway process. A registry per process (not prom-client's global
 * one), so several gateways in one test process do not collide. Queue depths and ages are read
 * from Redis when scraped, so every process reports the shared queues alike.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Queue } from 'bullmq';

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
  readonly intake = new Counter({
    name: 'gateway_intake_total',
    help: 'POST /v1/cases by outcome: accepted, repeat, or the error code',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly departmentCalls = new Counter({
    name: 'gateway_department_calls_total',
    help: 'Calls to departments by operation (submit, push, result) and outcome (ok, duplicate, retry, retry-after, permanent, auth)',
    labelNames: ['department', 'operation', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly departmentLatency = new Histogram({
    name: 'gateway_department_latency_seconds',
    help: 'Time a department call took, by operation',
    labelNames: ['department', 'operation'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600],
    registers: [this.registry],
  });
  readonly jobsFailed = new Counter({
    name: 'gateway_jobs_failed_total',
    help: 'Jobs failed for good (the dead-letter set), by queue',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'gateway_job_retries_total',
    help: 'Job attempts that failed and will be retried, by queue',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  readonly replicaWaits = new Histogram({
    name: 'gateway_replica_wait_seconds',
    help: 'Redis WAIT rounds for redis.waitReplicas, by outcome (confirmed, short: fewer replicas than required in time)',
    labelNames: ['outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly workerRecreations = new Counter({
    name: 'gateway_worker_recreations_total',
    help: 'Workers of this process found to have stopped consuming and recreated, by queue',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });

  constructor(
    queues: () => { name: string; queue: Queue }[] = () => [],
    outbox: () => Promise<{ routes: number; oldestWaitingSeconds: number }> = async () => ({ routes: 0, oldestWaitingSeconds: 0 }),
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: 'gateway_' });
    // Read from Redis at scrape time, once per scrape for the three gauges (they are collected together).
    type Row = { name: string; counts: Record<string, number>; oldestSeconds: number; paused: boolean };
    let snapshot: { at: number; rows: Promise<Row[]> } | null = null;
    const read = () => {
      if (!snapshot || Date.now() - snapshot.at > 500)
        snapshot = {
          at: Date.now(),
          rows: Promise.all(
            queues().map(async ({ name, queue }) => {
              const [first] = await queue.getJobs(['waiting'], 0, 0, true);
              return { name, counts: await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized'), oldestSeconds: first ? (Date.now() - first.timestamp) / 1000 : 0, paused: await queue.isPaused() };
            }),
          ),
        };
      return snapshot.rows;
    };
    new Gauge({
      name: 'gateway_queue_jobs',
      help: 'Jobs per queue and state',
      labelNames: ['queue', 'state'] as const,
      registers: [this.registry],
      async collect() {
        for (const r of await read()) for (const [state, n] of Object.entries(r.counts)) this.set({ queue: r.name, state }, n);
      },
    });
    new Gauge({
      name: 'gateway_queue_oldest_waiting_seconds',
      help: 'Age of the oldest waiting job per queue',
      labelNames: ['queue'] as const,
      registers: [this.registry],
      async collect() {
        for (const r of await read()) this.set({ queue: r.name }, r.oldestSeconds);
      },
    });
    // The outbox: routes recorded by intake, not yet in their department queue (worker processes move them).
    new Gauge({
      name: 'gateway_outbox_routes',
      help: 'Routes accepted and recorded, waiting in the outbox for a worker process to queue them',
      registers: [this.registry],
      async collect() {
        this.set((await outbox()).routes);
      },
    });
    new Gauge({
      name: 'gateway_outbox_oldest_waiting_seconds',
      help: 'How long the oldest unclaimed route has waited in the outbox',
      registers: [this.registry],
      async collect() {
        this.set((await outbox()).oldestWaitingSeconds);
      },
    });
    new Gauge({
      name: 'gateway_queue_paused',
      help: '1 when ops paused the queue',
      labelNames: ['queue'] as const,
      registers: [this.registry],
      async collect() {
        for (const r of await read()) this.set({ queue: r.name }, r.paused ? 1 : 0);
      },
    });
  }

  /** Times a department call and counts its outcome. */
  async timed<T extends { kind: string }>(department: string, operation: string, call: () => Promise<T>): Promise<T> {
    const end = this.departmentLatency.startTimer({ department, operation });
    try {
      const r = await call();
      this.departmentCalls.inc({ department, operation, outcome: r.kind });
      return r;
    } finally {
      end();
    }
  }
}
