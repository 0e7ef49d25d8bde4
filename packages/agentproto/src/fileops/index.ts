// The file-op RPC: the agent-side service and the local client.
export {
  type FileCallOptions,
  FileClient,
  FileOpError,
  type FileOpRpc,
  files,
  type ReadResult,
} from './client.js';
export { Errno, errnoName, errnoText, linuxErrno } from './errno.js';
export { GoFileMode, goFileMode, hostOpenFlags, LinuxOpenFlag, posixModeFromGo } from './mode.js';
export {
  DEFAULT_MAX_READ_BYTES,
  FileOpService,
  type FileOpServiceOptions,
} from './service.js';
