// The app behind the gateway in docs/first-agent.md: greets the user the agent named.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const port = Number(process.argv[2] ?? 3000);
const server = createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(`hello ${req.headers['x-user'] ?? 'stranger'}, this is ${req.url}`);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`app listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
