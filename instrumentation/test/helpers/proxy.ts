/**
 * A local HTTP proxy in front of the real collector that can lose responses: the request is
 * forwarded (so the collector commits it) and then the client's connection is destroyed, as
 * when a network drops an answer. It makes the instrumentation retry something that succeeded.
 */
import * as http from 'node:http';
import * as net from 'node:net';

export class LossyProxy {
  /** how many upcoming matching responses to lose */
  loseNext = 0;
  match: (path: string) => boolean = () => true;
  /** requests that get no answer at all (a collector that hangs on them) */
  stall: (path: string) => boolean = () => false;
  stalled = 0;
  lost = 0;
  forwarded = 0;
  url = '';
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly target: string) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        if (this.stall(req.url ?? '/')) {
          this.stalled++;
          return;
        }
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) {
          if (typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k)) headers[k] = v;
        }
        const init: RequestInit = { method: req.method ?? 'GET', headers };
        if (chunks.length) init.body = Buffer.concat(chunks);
        try {
          const upstream = await fetch(this.target + (req.url ?? '/'), init);
          const body = Buffer.from(await upstream.arrayBuffer());
          this.forwarded++;
          if (this.loseNext > 0 && this.match(req.url ?? '/')) {
            this.loseNext--;
            this.lost++;
            req.socket.destroy();
            return;
          }
          res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
          res.end(body);
        } catch {
          res.writeHead(502);
          res.end();
        }
      });
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A TCP server that accepts connections and never answers. */
export class HungServer {
  url = '';
  accepted = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor() {
    this.server = net.createServer((s) => {
      this.accepted++;
      this.sockets.add(s);
      s.on('data', () => {});
      s.on('error', () => {});
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
