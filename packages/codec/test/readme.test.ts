import { expect, test } from 'vitest';
import { decoded } from '../examples/readme.js';

test('the README example runs', () => {
  expect(decoded.response_headers).toEqual([{ set: { name: 'x-seen', value: 'yes' } }]);
  expect(decoded.audit.custom).toEqual({ correlation_id: 'req-1' });
});
