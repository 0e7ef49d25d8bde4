// @picket/spoe: being built (see README.md).
export {};
