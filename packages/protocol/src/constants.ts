/** Protocol version spoken by picket's v2 transports (UDS, gRPC, reverse). */
export const PROTOCOL_VERSION = 2;
/** Version number the legacy v1 protocol carried in its requests. */
export const PROTOCOL_VERSION_V1 = 1;

/**
 * Largest UDS v2 payload a writer may send (the frame length field counts the
 * type byte too, so the length can be this + 1). Rust writers reject larger payloads.
 */
export const MAX_UDS_PAYLOAD_SIZE = 16 * 1024 * 1024;
/**
 * Largest UDS v2 length field a reader accepts (type byte + payload). Rust readers
 * reject `L > 16 MiB`, so the largest payload a Rust peer reads is 16 MiB - 1: one
 * byte less than a writer may send. picket writers keep to the reader's limit.
 */
export const MAX_UDS_FRAME_LENGTH = 16 * 1024 * 1024;
/** Legacy v1 frames (`[u32 BE length][JSON]`) carry at most 10 MiB. */
export const MAX_V1_MESSAGE_SIZE = 10 * 1024 * 1024;
/** tonic's default gRPC decode limit, which the Rust proxy and agents use. */
export const DEFAULT_GRPC_MAX_MESSAGE_SIZE = 4 * 1024 * 1024;

/** Identity a Rust proxy reports in handshakes and registration responses. */
export const ZENTINEL_PROXY_ID = 'zentinel-proxy';
/** Crate version the spec's golden vectors were taken from. */
export const ZENTINEL_PROXY_VERSION = '0.6.20';
