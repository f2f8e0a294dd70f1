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

int fuzz_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len) {
    // RFC 5869 written out with HMAC() (extract, then expand), not squtun's HKDF.
    uint8_t prk[32], t[32];
    unsigned int l = 0;
    if (out_len > 255 * 32 || info_len > 1024) return 0;
    if (HMAC(EVP_sha256(), salt, (int)salt_len, ikm, ikm_len, prk, &l) == NULL || l != 32) return 0;
    uint8_t block[32 + 1024 + 1];
    size_t done = 0, tl = 0;
    for (uint8_t i = 1; done < out_len; i++) {
        size_t m = 0;
        for (size_t k = 0; k < tl; k++) block[m++] = t[k];
        for (size_t k = 0; k < info_len; k++) block[m++] = info[k];
        block[m++] = i;
        if (HMAC(EVP_sha256(), prk, 32, block, m, t, &l) == NULL || l != 32) return 0;
        tl = 32;
        for (size_t k = 0; k < 32 && done < out_len; k++) out[done++] = t[k];
    }
    return 1;
}

static const EVP_CIPHER *aead_of(int suite) {
    return suite == 2 ? EVP_aes_256_gcm() : suite == 3 ? EVP_chacha20_poly1305() : NULL;
}

// One AEAD operation in place: enc = 1 seals buf and writes the tag, enc = 0
// opens buf and checks the tag (returns 0 on a wrong tag).
static int aead_run(int suite, int enc, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
                    size_t aad_len, uint8_t *buf, size_t len, uint8_t *tag) {
    const EVP_CIPHER *cipher = aead_of(suite);
    if (cipher == NULL || len > 0x7fffffff || aad_len > 0x7fffffff) return 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return 0;
    int ok = 0, outl = 0;
    uint8_t final[32];
    if (EVP_CipherInit_ex(ctx, cipher, NULL, NULL, NULL, enc) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) == 1
        && EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) == 1
        && (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1)
        && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1
        && (len == 0 || (EVP_CipherUpdate(ctx, buf, &outl, buf, (int)len) == 1 && (size_t)outl == len))
        && EVP_CipherFinal_ex(ctx, final, &outl) == 1
        && (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1))
        ok = 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

int fuzz_aead_seal(int suite, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                   uint8_t *buf, size_t len, uint8_t *tag) {
    return aead_run(suite, 1, key, nonce, aad, aad_len, buf, len, tag);
}

int fuzz_aead_open(int suite, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                   uint8_t *buf, size_t len, const uint8_t *tag) {
    uint8_t t[16];
    for (int i = 0; i < 16; i++) t[i] = tag[i];
    return aead_run(suite, 0, key, nonce, aad, aad_len, buf, len, t);
}
