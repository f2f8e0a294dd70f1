#include "fuzzsupport.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>

int fuzz_hmac_sha256(const uint8_t *key, const uint8_t *data, size_t len, uint8_t *out) {
    unsigned int outl = 0;
    if (HMAC(EVP_sha256(), key, 32, data, len, out, &outl) == NULL) return 0;
    return outl == 32;
}

int fuzz_aes256cbc_encrypt(const uint8_t *key, const uint8_t *iv, uint8_t *buf, size_t len) {
    if (len % 16 != 0 || len > 0x7fffffff) return 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return 0;
    int ok = 0, outl = 0;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv) == 1
        && EVP_CIPHER_CTX_set_padding(ctx, 0) == 1
        && EVP_EncryptUpdate(ctx, buf, &outl, buf, (int)len) == 1
        && (size_t)outl == len)
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}
