/*
 * control/verify.h: checks the ed25519 signature of a desired-configuration document that arrived
 * from the control plane, before anything in it is trusted.
 *
 * The document (docs/agent-control.md) is one JSON object with two string members:
 *   {"payload": "<base64 of the configuration bytes>", "signature": "<base64 of the 64-byte
 *    ed25519 signature over exactly those bytes>"}
 * Base64 makes the signed bytes unambiguous: nothing re-encodes, re-orders or re-escapes them on
 * the way (brokers, shells, JSON tools), and the signer signs a plain file.
 *
 * Invariants: the payload is returned only when the signature verifies with the pinned key;
 * duplicate members, escapes inside the two members, oversized documents and any base64 or length
 * error are refused with a one-line reason. Other members are ignored (they are not signed).
 */
#ifndef EA_CONTROL_VERIFY_H
#define EA_CONTROL_VERIFY_H

#include <stddef.h>

#define EA_CONTROL_MAX_DOC (256u * 1024u)

/* Returns 0 and a malloc'ed, NUL-terminated copy of the signed payload in *payload_out (length
 * without the NUL in *payload_len), or -1 with the reason in err. */
int ea_control_verify(const void *doc, size_t len, const unsigned char pubkey[32],
                      char **payload_out, size_t *payload_len, char *err, size_t errlen);

/* Reads a pinned public key: a file holding either the 32 raw bytes, base64 of them, or a PEM/DER
 * SubjectPublicKeyInfo as written by `openssl pkey -pubout` (the key is its last 32 bytes).
 * Returns 0 or -1 with err. */
int ea_control_load_pubkey(const char *path, unsigned char pubkey[32], char *err, size_t errlen);

#endif
