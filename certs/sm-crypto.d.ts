/** The part of sm-crypto (pure JS SM2/SM3) the verifier uses; the package ships no types. */
declare module 'sm-crypto' {
  const smCrypto: {
    sm2: { doVerifySignature(msg: string | Uint8Array | number[], sigHex: string, publicKeyHex: string, options: { der: boolean; hash: boolean; userId: string }): boolean };
  };
  export default smCrypto;
}
