/**
 * The prox plugin the `prox` scenario starts (`node --import tsx prox-plugin.ts`): the
 * reference EchoAgent served through `serveAgentAsProxPlugin`, as `picket serve echo --prox`
 * does. prox's host talks to it on stdio (control) and on its hook socket (calls).
 */
import { EchoAgent } from '@picket/agents';
import { serveAgentAsProxPlugin } from '@picket/prox';

await serveAgentAsProxPlugin(new EchoAgent());
