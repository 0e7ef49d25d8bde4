import { createConsoleLogger, type Logger } from '@picket/protocol';

export { type LogFields, type Logger, silentLogger } from '@picket/protocol';

/** Warnings and errors to the console, tagged `[picket/v1]`; debug and info dropped. */
export const defaultLogger: Logger = createConsoleLogger('picket/v1');
