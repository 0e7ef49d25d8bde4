export { type RecordedEvent, RecordingAgent } from './recording-agent.js';
export {
  type ComplianceFixture,
  type ComplianceOptions,
  cid,
  requestHeaders,
  runComplianceSuite,
  type StartedFixture,
  type Unsupported,
} from './suite.js';
