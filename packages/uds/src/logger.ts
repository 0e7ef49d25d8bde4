import { createConsoleLogger, type Logger } from '@picket/protocol';

export { type LogFields, type Logger, silentLogger } from '@picket/protocol';

/** Warnings and errors to the console, tagged `[picket/uds]`; debug and info dropped. */
export const defaultLogger: Logger = createConsoleLogger('picket/uds');

/** Everything to the console (handy while developing an agent). */
export const consoleLogger: Logger = createConsoleLogger('picket/uds', { verbose: true });
