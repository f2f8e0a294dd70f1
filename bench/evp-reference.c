// The per-datagram work of an AEAD suite, written directly against OpenSSL's
// EVP interface in C: the reference squtun-microbench's AEAD figures are
// read against. OpenSSL 3.0's `openssl speed -evp chacha20-poly1305 -aead`
// runs ChaCha20-Poly1305 through its plain streaming loop (apps/speed.c
// gives the AEAD loop to GCM, CCM, OCB and SIV only): no nonce, no
// associated data, no final step, no tag, so it is not measuring a
// datagram's work. Here every iteration does what sealing or opening one
// datagram does: a fresh 96-bit nonce on a context keyed once, 32 bytes of
// associated data (the header), one in-place update over the payload, the
// final step and the 16-byte tag.
//
//   evp-reference NAME PAYLOAD_BYTES ITERATIONS seal|open [init|param]
//
// init (the default): the nonce by EVP_CipherInit_ex2 and the tag by
// EVP_CIPHER_CTX_ctrl, the textbook way. param: as squtun does it, the
// nonce and the tag through parameter arrays built once
// (EVP_CIPHER_CTX_set_params / get_params; ChaCha20-Poly1305's nonce as
// its provider's 96-bit "tlsivfixed", AES-256-GCM's still by init).
//
// Prints "NAME seal|open N B (init|param): T ns/op M MB/s" (MB = 10^6 payload bytes).
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "evp-reference: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: evp-reference NAME PAYLOAD_BYTES ITERATIONS seal|open [init|param]\n");
        return 2;
    }
    int byParam = argc == 6 && strcmp(argv[5], "param") == 0;
    if (argc == 6 && !byParam && strcmp(argv[5], "init") != 0) {
        fprintf(stderr, "evp-reference: bad arguments\n");
        return 2;
    }
    const char *name = argv[1];
    int len = atoi(argv[2]);
    long iterations = atol(argv[3]);
    int seal = strcmp(argv[4], "seal") == 0;
    if (len < 0 || len > 65459 || iterations < 1 || (!seal && strcmp(argv[4], "open") != 0)) {
        fprintf(stderr, "evp-reference: bad arguments\n");
        return 2;
    }
    EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (cipher == NULL || ctx == NULL) die("fetch");
    static unsigned char packet[32 + 65459 + 16], master[32 + 65459 + 16];
    unsigned char key[32], nonce[12], fin[16];
    int outl;
    memset(key, 0x5a, sizeof key);
    memset(nonce, 0xa5, sizeof nonce);
    for (size_t i = 0; i < sizeof master; i++) master[i] = (unsigned char)(i * 7);

    // One sealed datagram to open (open mode restores it before each opening,
    // as squtun-microbench does; the copy is timed separately and subtracted).
    if (EVP_CipherInit_ex2(ctx, cipher, key, nonce, 1, NULL) != 1
        || EVP_CipherUpdate(ctx, NULL, &outl, master, 32) != 1
        || EVP_CipherUpdate(ctx, master + 32, &outl, master + 32, len) != 1
        || EVP_CipherFinal_ex(ctx, fin, &outl) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, master + 32 + len) != 1) die("seal");
    if (EVP_CipherInit_ex2(ctx, cipher, key, NULL, seal, NULL) != 1) die("key setup");

    double copy = 0;
    if (!seal) {
        double c0 = now_ns();
        for (long i = 0; i < iterations; i++) {
            memcpy(packet, master, (size_t)len + 48);
            __asm__ volatile("" ::: "memory");
        }
        copy = (now_ns() - c0) / (double)iterations;
    }
    memcpy(packet, master, (size_t)len + 48);
    int chachaNonce = byParam && strcmp(name, "ChaCha20-Poly1305") == 0;
    OSSL_PARAM nonceParam[2] = { OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, nonce, 12), OSSL_PARAM_END };
    OSSL_PARAM tagParam[2] = { OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, packet + 32 + len, 16), OSSL_PARAM_END };
    OSSL_PARAM openParam[3] = { OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, nonce, 12),
                                OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, packet + 32 + len, 16), OSSL_PARAM_END };
    double t0 = now_ns();
    for (long i = 0; i < iterations; i++) {
        int ok;
        if (seal) {
            nonce[11] = (unsigned char)i;  // a new nonce per datagram, as the counter makes one
            ok = (chachaNonce ? EVP_CIPHER_CTX_set_params(ctx, nonceParam) : EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, 1, NULL)) == 1;
        } else {
            memcpy(packet, master, (size_t)len + 48);  // the sealed datagram, nonce and all, again
            // param: the expected tag (and ChaCha20-Poly1305's nonce) in one call, before the data, as squtun does.
            ok = (chachaNonce || EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, 0, NULL) == 1)
                && (!byParam || EVP_CIPHER_CTX_set_params(ctx, chachaNonce ? openParam : openParam + 1) == 1);
        }
        ok = ok && EVP_CipherUpdate(ctx, NULL, &outl, packet, 32) == 1
            && EVP_CipherUpdate(ctx, packet + 32, &outl, packet + 32, len) == 1;
        if (seal)
            ok = ok && EVP_CipherFinal_ex(ctx, fin, &outl) == 1
                && (byParam ? EVP_CIPHER_CTX_get_params(ctx, tagParam)
                            : EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, packet + 32 + len)) == 1;
        else
            ok = ok && (byParam || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, packet + 32 + len) == 1)
                && EVP_CipherFinal_ex(ctx, fin, &outl) == 1;
        if (!ok) die(seal ? "seal" : "open");
    }
    double per = (now_ns() - t0) / (double)iterations - copy;
    printf("%s %s %d B (%s): %.1f ns/op %.1f MB/s\n", name, seal ? "seal" : "open", len, byParam ? "param" : "init", per,
           len / per * 1e3);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(cipher);
    return 0;
}
