/**
 * The `prox+exec:` endpoint: a prox plugin program and its arguments in one string.
 *
 * Grammar, after the scheme: words separated by spaces or tabs; inside single quotes
 * everything is literal; inside double quotes a backslash escapes `"` and `\` (and is kept
 * before anything else); outside quotes a backslash escapes the next character. No
 * variables, globs or other shell syntax: the words are the argv as written.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

/** The scheme of a prox plugin endpoint (case-insensitive). */
export const PROX_EXEC_SCHEME = 'prox+exec:';

/** What {@link parseProxExec} makes of an endpoint. */
export interface ProxExecEndpoint {
  kind: 'prox';
  /** the string as given */
  endpoint: string;
  /** argv: `command[0]` is the plugin program */
  command: string[];
}

/** Whether `endpoint` uses the `prox+exec:` scheme. */
export function isProxExecEndpoint(endpoint: string): boolean {
  return endpoint.trim().toLowerCase().startsWith(PROX_EXEC_SCHEME);
}

function invalid(endpoint: string, problem: string): AgentProtocolError {
  return new AgentProtocolError(
    ErrorCode.InvalidArgument,
    `invalid prox plugin endpoint ${JSON.stringify(endpoint)}: ${problem} (expected prox+exec:/path/to/plugin [args…])`,
  );
}

/** Splits a command line into words (see the module comment for the quoting rules). */
export function splitCommandLine(text: string, endpoint = text): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) word += text[++i];
      else word += c;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw invalid(endpoint, 'a trailing backslash escapes nothing');
      word += text[++i];
      inWord = true;
    } else if (c === '\n' || c === '\r' || c === '\0') {
      throw invalid(endpoint, 'a line break or NUL is not allowed');
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote !== undefined) throw invalid(endpoint, `unterminated ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}

/**
 * Parses `prox+exec:/path/to/plugin [args…]` into argv. Throws INVALID_ARGUMENT for
 * another scheme, an empty command, an unterminated quote, a line break or NUL.
 */
export function parseProxExec(endpoint: string): ProxExecEndpoint {
  if (typeof endpoint !== 'string') throw invalid(String(endpoint), 'an endpoint is a string');
  const e = endpoint.trim();
  if (!e.toLowerCase().startsWith(PROX_EXEC_SCHEME)) {
    throw invalid(endpoint, `it does not start with ${PROX_EXEC_SCHEME}`);
  }
  const command = splitCommandLine(e.slice(PROX_EXEC_SCHEME.length), endpoint);
  if (command.length === 0 || command[0] === '') throw invalid(endpoint, 'no plugin program');
  return { kind: 'prox', endpoint, command };
}
