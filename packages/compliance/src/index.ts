export { readmeExamplesMatchFiles } from './readme-examples.js';
export { type RecordedEvent, RecordingAgent } from './recording-agent.js';
export {
  type SdkLikeV1Agent,
  type SdkLikeV1AgentOptions,
  startSdkLikeV1Agent,
} from './sdk-agent.js';
export { type UnixAgentServer, unixSocketFixture } from './socket-fixture.js';
export {
  type ComplianceFixture,
  type ComplianceOptions,
  cid,
  requestHeaders,
  runComplianceSuite,
  type StartedFixture,
  type Unsupported,
} from './suite.js';
export {
  captureLogger,
  type GoldenVector,
  goldenFrame,
  goldenPayload,
  goldenRequestHeaders,
  goldenVector,
  goldenVectors,
  hasOpenssl,
  type LogEntry,
  type TestCerts,
  tempDir,
  tempSocket,
  testCerts,
  until,
} from './testkit.js';
