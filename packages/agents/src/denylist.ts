import { BlockList, isIP } from 'node:net';
import {
  type AgentCapabilities,
  type AgentHandler,
  type AgentResponse,
  allow,
  block,
  createCapabilities,
  type RequestHeadersEvent,
} from '@picket/protocol';

export interface DenylistAgentOptions {
  agentId?: string;
  /** a request whose `uri` starts with one of these is blocked (403 "Forbidden path") */
  blockedPaths?: string[];
  /** client addresses to block: single IPs or CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`) */
  blockedIps?: string[];
}

/**
 * Blocks requests by path prefix, then by client IP, with exactly the bodies,
 * tags and reason codes of the Zentinel reference agent: path ⇒ 403
 * "Forbidden path", tags `denylist`/`blocked_path`, reason `PATH_BLOCKED`;
 * IP ⇒ 403 "Forbidden IP", `denylist`/`blocked_ip`, `IP_BLOCKED`. Everything
 * else is allowed. Unlike upstream it also takes CIDR ranges.
 */
export class DenylistAgent implements AgentHandler {
  readonly agentId: string;
  private readonly paths: string[];
  private readonly ips = new BlockList();

  constructor(options: DenylistAgentOptions = {}) {
    this.agentId = options.agentId ?? 'denylist-agent';
    this.paths = [...(options.blockedPaths ?? [])];
    for (const entry of options.blockedIps ?? []) this.addIp(entry);
  }

  private addIp(entry: string): void {
    const [address = '', prefix, extra] = entry.trim().split('/');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) {
      throw new TypeError(`DenylistAgent: "${entry}" is not an IP address or CIDR range`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) {
      this.ips.addAddress(address, type);
      return;
    }
    const bits = Number(prefix);
    if (!/^\d+$/.test(prefix) || bits > (family === 4 ? 32 : 128)) {
      throw new TypeError(`DenylistAgent: "${entry}" has an invalid prefix length`);
    }
    this.ips.addSubnet(address, bits, type);
  }

  capabilities(): AgentCapabilities {
    return createCapabilities({
      agentId: this.agentId,
      name: 'Denylist Agent',
      version: '1.0.0',
      events: ['request_headers'],
      features: { concurrent_requests: 100 },
    });
  }

  /** Whether `ip` is on the list (exact address or inside a range). */
  isBlockedIp(ip: string): boolean {
    // Dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    if (mapped?.[1]) ip = mapped[1];
    const family = isIP(ip);
    if (family === 0) return false;
    return this.ips.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }

  onRequestHeaders(e: RequestHeadersEvent): AgentResponse {
    if (this.paths.some((p) => e.uri.startsWith(p))) {
      return block(403, {
        body: 'Forbidden path',
        tags: ['denylist', 'blocked_path'],
        reasonCodes: ['PATH_BLOCKED'],
      });
    }
    if (this.isBlockedIp(e.metadata.client_ip)) {
      return block(403, {
        body: 'Forbidden IP',
        tags: ['denylist', 'blocked_ip'],
        reasonCodes: ['IP_BLOCKED'],
      });
    }
    return allow();
  }
}
