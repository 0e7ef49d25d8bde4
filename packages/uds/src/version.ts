/** This package's version; a picket proxy reports it as `proxy_version` by default. */
export const PICKET_UDS_VERSION = '0.1.0';
