// A prox plugin written against prox's own hooks: API keys on requests, target discovery,
// a shared speed limit per key. prox starts it (`node plugin.js`) and talks to it on stdio.
import { type ProxPlugin, serveProxPlugin } from '@picket/prox';

const keys = new Set((process.env.API_KEYS ?? '').split(',').filter((k) => k !== ''));

const plugin: ProxPlugin = await serveProxPlugin({
  // Once per bound route (and again after every prox reload).
  onConfigure({ routeId }) {
    // A full replacement of the route's balancer targets ("*": every route).
    plugin.setTargets(routeId === '' ? '*' : routeId, ['10.0.0.11:8080', '10.0.0.12:8080']);
  },

  onRequest(req) {
    const key = req.headers['X-Api-Key'];
    if (key === undefined || !keys.has(key)) {
      return { allow: false, status: 401, body: 'Unauthorized' };
    }
    return {
      allow: true,
      headers: { 'X-Api-Key': '', 'X-Client': key.slice(0, 4) },
      speedLimit: { downloadMbps: 100, groupKey: key },
    };
  },

  onResponse() {
    return { remove: ['Server'] };
  },

  onDisconnect(info) {
    plugin.log('info', 'connection closed', 'route', info.routeId, 'bytes', info.bytesTx);
  },
});
