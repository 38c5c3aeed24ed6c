/**
 * Entry point. `node dist/gateway/main.js [--role api|worker|all] [--config file.yaml]`
 * Roles may also be set by GATEWAY_ROLE; the default runs API and workers in one process.
 */
import { ConfigError, loadConfig, settingsTable } from './config.js';
import { createLogger } from './log.js';
import { startGateway } from './runtime.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

async function main() {
  if (process.argv.includes('--help')) {
    process.stdout.write('Settings (file path → environment variable):\n');
    for (const s of settingsTable()) process.stdout.write(`  ${s.path.padEnd(44)} ${s.env}${s.secret ? '  (secret)' : ''}\n`);
    return;
  }
  const role = arg('role');
  let cfg;
  try {
    cfg = loadConfig({ ...(arg('config') ? { file: arg('config')! } : {}), ...(role ? { overrides: { role } } : {}) });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(cfg.log.level);
  const gw = await startGateway(cfg, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    gw.close(cfg.worker.shutdownDeadlineMs)
      .then(() => process.exit(0))
      .catch((e) => {
        log.error({ err: (e as Error).message }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`gateway failed to start: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
