export { RecordingAgent, type RecordedEvent } from './recording-agent.js';
export {
  runComplianceSuite,
  requestHeaders,
  cid,
  type ComplianceFixture,
  type ComplianceOptions,
  type StartedFixture,
  type Unsupported,
} from './suite.js';
