// @picket/agentproto: being built (see README.md).
export {};
