#ifndef SQUTUN_FUZZSUPPORT_H
#define SQUTUN_FUZZSUPPORT_H
// libcrypto one-shots for the packet target's reference model. Kept apart
// from squtun-crypto on purpose: the oracle must not share its code.
#include <stddef.h>
#include <stdint.h>

/// HMAC-SHA256(key[0..<32], data[0..<len]) into out[0..<32]. Returns 1 on success.
int fuzz_hmac_sha256(const uint8_t *key, const uint8_t *data, size_t len, uint8_t *out);

/// AES-256-CBC encryption in place, no padding (len a multiple of 16). Returns 1 on success.
int fuzz_aes256cbc_encrypt(const uint8_t *key, const uint8_t *iv, uint8_t *buf, size_t len);

/// HKDF-SHA256 (RFC 5869, extract and expand) of ikm with salt and info
/// (at most 1024 bytes) into out[0..<out_len]. Returns 1 on success.
int fuzz_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

/// AEAD of suite 2 (AES-256-GCM) or 3 (ChaCha20-Poly1305), 12-byte nonce,
/// 16-byte tag: seals buf[0..<len] in place and writes the tag. Returns 1 on success.
int fuzz_aead_seal(int suite, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                   uint8_t *buf, size_t len, uint8_t *tag);

/// Opens buf[0..<len] in place; 1 if the tag verified, 0 otherwise (buf is then garbage).
int fuzz_aead_open(int suite, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                   uint8_t *buf, size_t len, const uint8_t *tag);

#endif
