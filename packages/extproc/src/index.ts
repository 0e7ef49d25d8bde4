// @picket/extproc: being built (see README.md).
export {};
