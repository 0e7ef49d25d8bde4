// Express 4 (the `express4` alias) for the compatibility test: its API used there is Express 5's.
declare module 'express4' {
  import express from 'express';
  export default express;
}
