/** This package's version; the default `proxy_version` a picket listener reports. */
export const PICKET_REVERSE_VERSION = '0.1.0';
