/** Licence verification with the live trust store: what intake, results and the API call. */
import type { DepartmentId } from '../model/case.js';
import type { TrustStore } from './trust-store.js';
import { verifyLicence, type VerificationReport } from './verify.js';

export class Licences {
  constructor(private readonly trust: TrustStore) {}

  verify(envelope: unknown, ctx: { department?: DepartmentId; holderIds?: string[] } = {}): VerificationReport {
    return verifyLicence(envelope, {
      trust: this.trust.current(),
      ...ctx,
      onChain: (ints) => void this.trust.rememberIntermediates(ints).catch(() => undefined),
    });
  }
}
