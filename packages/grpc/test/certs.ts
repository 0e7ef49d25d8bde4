/** TLS material made at test time: the shared picket test kit. */
export { hasOpenssl, type TestCerts, testCerts } from '@picket/compliance';
