import { createConsoleLogger, type Logger } from '@picket/protocol';

/** Warnings and errors to the console, tagged `[picket/reverse]`, so a refused registration or a lost proxy is never silent. */
export const defaultLogger: Logger = createConsoleLogger('picket/reverse');
