#ifndef SQUTUN_COPENSSL_SHIM_H
#define SQUTUN_COPENSSL_SHIM_H
/* The SHA256_* functions are deprecated in OpenSSL 3.0 but kept: squtun's
   HMAC uses them because the EVP HMAC allocates on every packet there
   (see PacketCipher.swift). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>
#endif
