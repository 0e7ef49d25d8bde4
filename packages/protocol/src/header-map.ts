/**
 * Header maps (`name → values`) built one computed key at a time, as decoders and the
 * HTTP engine build them. A literal `{}` has four fields inside the object, and V8 turns an
 * object into a slow dictionary after 12 more properties stored by computed key: a browser
 * request's 20 headers would do that to every map (a dictionary also has no enum cache,
 * so every `for…in` over it, as an encoder does, collects its keys afresh).
 */

/** Makes `{}`-equal objects (same prototype, `constructor === Object`) with ten fields inside. */
const HeaderMap = function HeaderMap(this: object) {} as unknown as new () => Record<
  string,
  unknown
>;
HeaderMap.prototype = Object.prototype;

// V8 settles the size of a constructor's objects on the most fields any of its first seven
// got (slack tracking): made full here, so that a few small first requests (health checks)
// cannot shrink every later header map to their size.
for (let i = 0; i < 8; i++) {
  const h = new HeaderMap();
  for (let k = 0; k < 10; k++) h[`h${k}`] = undefined;
}

/**
 * A fresh, empty header map: a plain object (`Object.prototype`, `constructor === Object`,
 * equal to `{}` in every observable way) that stays in V8's fast mode for two dozen
 * headers stored by computed key. Store `__proto__` with `putOwn`, as for any object.
 */
export function headerMap<T = string[]>(): Record<string, T> {
  return new HeaderMap() as Record<string, T>;
}
