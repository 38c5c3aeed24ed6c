/** Licence verification with the live trust store: what intake, results and the API call. */
import type { DepartmentId } from '../model/case.js';
import type { TrustStore } from './trust-store.js';
import { verifyLicence, type VerificationReport } from './verify.js';

export class Licences {
  constructor(
    private readonly trust: TrustStore,
    /** Counts every verification by verdict (a metric ops alert on). */
    private readonly count: (verdict: string, source: string) => void = () => undefined,
  ) {}

  verify(envelope: unknown, ctx: { department?: DepartmentId; holderIds?: string[] } = {}): VerificationReport {
    const report = verifyLicence(envelope, {
      trust: this.trust.current(),
      ...ctx,
      onChain: (ints) => void this.trust.rememberIntermediates(ints).catch(() => undefined),
    });
    this.count(report.verdict, ctx.department ?? 'api');
    return report;
  }
}
