/**
 * What the four department simulators share: a server on loopback, a mode ('down' resets every
 * connection, new and open), timers that die with the simulator, and a material store.
 */
import type http from 'node:http';
import type https from 'node:https';
import type { Socket } from 'node:net';
import { MaterialStore } from './material-store.js';

export abstract class SimulatorServer<M extends string> {
  mode: M;
  port = 0;
  /** Uploaded chunks (on disk) and the files assembled and verified, by the department's own ids. */
  readonly materials = new MaterialStore();
  protected server!: http.Server | https.Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly scheme: 'http' | 'https',
    normal: M,
  ) {
    this.mode = normal;
  }

  /** Takes the subclass's server; `event` is the one that hands over a (TLS-established) connection. */
  protected serve(server: http.Server | https.Server, event: 'connection' | 'secureConnection' = 'connection') {
    this.server = server;
    server.on(event, (s: Socket) => {
      if (this.mode === 'down') return s.destroy();
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen(port = 0): Promise<string> {
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    return this.url;
  }

  get url() {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  /** Takes the simulator down (every connection reset) or brings it back, or changes its behaviour. */
  setMode(m: M) {
    this.mode = m;
    if (m === 'down') for (const s of this.sockets) s.destroy();
  }

  /** Runs `fn` after `ms`, unless the simulator is closed first. */
  protected later(ms: number, fn: () => void) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  async close() {
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    this.materials.cleanup();
  }
}
