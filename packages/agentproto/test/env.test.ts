// The exec mode's env allow-list (spec "Details" §2), as a table.
import { describe, expect, it } from 'vitest';
import { filterEnv } from '../src/index.js';

const ENV = [
  'HOME=/home/u',
  'PATH=/usr/bin',
  'AWS_KEY=k',
  'MY_AWS=m',
  'LD_PRELOAD=/hook.so',
  'TOKEN=secret',
  'LANG=C',
  'LC_ALL=C',
];

describe('filterEnv', () => {
  const cases: [string, string[], string[], string[], string[]][] = [
    // name, extra env, keep, remove, expected
    ['nothing kept without patterns', [], [], [], []],
    ['exact names', [], ['HOME', 'PATH'], [], ['HOME=/home/u', 'PATH=/usr/bin']],
    ['glob *', [], ['L*'], [], ['LD_PRELOAD=/hook.so', 'LANG=C', 'LC_ALL=C']],
    ['glob ? and class', [], ['L[AC]_???', 'LAN?'], [], ['LANG=C', 'LC_ALL=C']],
    ['negated class', [], ['L[^D]*'], [], ['LANG=C', 'LC_ALL=C']],
    ['regex is an unanchored search', [], ['/AWS/'], [], ['AWS_KEY=k', 'MY_AWS=m']],
    ['anchored regex', [], ['/^AWS_/'], [], ['AWS_KEY=k']],
    ['invalid regex skipped', [], ['/[/', 'HOME'], [], ['HOME=/home/u']],
    ['bad glob never matches', [], ['[', 'HOME'], [], ['HOME=/home/u']],
    [
      'remove wins over keep',
      [],
      ['*'],
      ['LD_*', '/TOKEN/'],
      ['HOME=/home/u', 'PATH=/usr/bin', 'AWS_KEY=k', 'MY_AWS=m', 'LANG=C', 'LC_ALL=C'],
    ],
    [
      'changed vars survive without a keep pattern (colon list)',
      ['MPROXY_CHANGED_ENVS=TOKEN:LANG'],
      [],
      [],
      ['TOKEN=secret', 'LANG=C'],
    ],
    [
      'changed list with commas too',
      ['MPROXY_CHANGED_ENVS=TOKEN,HOME'],
      [],
      [],
      ['HOME=/home/u', 'TOKEN=secret'],
    ],
    ['remove wins over changed', ['MPROXY_CHANGED_ENVS=LD_PRELOAD'], [], ['LD_*'], []],
    ['the marker is always stripped', ['MPROXY_CHANGED_ENVS=HOME'], ['*', 'MPROXY_*'], [], ENV],
    ['* does not cross a slash', ['A/B=1'], ['A*'], [], ['AWS_KEY=k']],
  ];
  it.each(cases)('%s', (_name, extra, keep, remove, expected) => {
    expect(filterEnv([...ENV, ...extra], keep, remove)).toEqual(expected);
  });

  it('treats null pattern lists as empty', () => {
    expect(filterEnv(ENV, null, null)).toEqual([]);
  });
});
