/**
 * A TCP proxy in front of Redis for tests of what clients see when the network misbehaves:
 * `freeze()` makes the connections it already carries go silent without closing (a half-open
 * connection after a restart, a lost reply); `retarget(port)` sends new connections elsewhere and
 * drops the old ones (a virtual IP following a failover).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private server!: Server;
  private pairs: Array<[Socket, Socket]> = [];
  private frozen: Array<[Socket, Socket]> = [];
  port = 0;

  constructor(private targetPort: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(this.targetPort, '127.0.0.1');
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = () => (client.destroy(), upstream.destroy());
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      this.pairs.push([client, upstream]);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Connections open now stop carrying bytes either way, and stay open. New ones pass. */
  freeze(): number {
    const live = this.pairs.filter(([c]) => !c.destroyed);
    for (const [c, u] of live) {
      c.unpipe(u);
      u.unpipe(c);
      c.pause();
      u.pause();
    }
    this.frozen.push(...live);
    this.pairs = [];
    return live.length;
  }

  /** New connections go to `port`; the ones open now are closed, so their clients reconnect. */
  retarget(port: number): void {
    this.targetPort = port;
    for (const [c, u] of this.pairs) (c.destroy(), u.destroy());
    this.pairs = [];
  }

  async close(): Promise<void> {
    for (const [c, u] of [...this.pairs, ...this.frozen]) (c.destroy(), u.destroy());
    this.pairs = [];
    this.frozen = [];
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
