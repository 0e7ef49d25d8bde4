// @picket/supervisor: being built (see README.md).
export {};
