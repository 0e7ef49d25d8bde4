/** Reading a reverse auth token from a file, so it stays off command lines (`ps`) and out of configs. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/**
 * The token stored in `file` (relative paths resolve against `baseDir`): its
 * text without one trailing line break (`echo tok > file` writes one). Throws
 * for an unreadable or empty file; the message names the absolute path and the
 * system error code, never any of the file's content.
 */
export function readTokenFile(file: string, baseDir: string = process.cwd()): string {
  const abs = resolve(baseDir, file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `cannot read token file ${abs}${code ? ` (${code})` : ''}`,
    );
  }
  const token = text.replace(/\r?\n$/, '');
  if (token === '') {
    throw new AgentProtocolError(ErrorCode.InvalidArgument, `token file ${abs} is empty`);
  }
  return token;
}
