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

#endif
