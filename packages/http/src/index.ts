// @picket/http: being built (see README.md).
export {};
