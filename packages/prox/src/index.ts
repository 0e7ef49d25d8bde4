// @picket/prox: being built (see README.md).
export {};
