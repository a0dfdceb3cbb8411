// An error from the backend or the transport, with the contract's error code.
export class ClientError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'ClientError';
  }
}
