/* Argon2id verifications per second on N threads, for comparing other
 * implementations of the service's hash with the one it uses (the RustCrypto
 * crate, measured by `gatehouse-bench hash-rate`). One implementation per
 * build: -DIMPL_PHC (the reference implementation's opt.c, compiled for the
 * flags given) or -DIMPL_SODIUM (libsodium, which picks its code for the CPU
 * at run time). The service's parameters: m = 19456 KiB, t = 2, p = 1, a
 * 32-byte output; each verification recomputes the hash and compares it.
 *
 * Usage: rate THREADS SECONDS     prints verifications per second
 *        rate 1 0 output          prints the output in hex, which must equal
 *                                 `gatehouse-bench hash-rate --output`
 * Built and run by bench/argon2-implementations.sh. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef IMPL_PHC
#include "argon2.h"
#else
#include <sodium.h>
#endif

#define M_KIB 19456
#define T_COST 2
#define OUT_LEN 32
static const char PASSWORD[] = "correct horse battery staple";
static const uint8_t SALT[16] = "0123456789abcdef";
static uint8_t expected[OUT_LEN];
static atomic_long done;
static double until;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#ifdef IMPL_PHC
/* The service reuses one block buffer per hashing thread; so does this. */
static __thread uint8_t *buffer;
static int reuse(uint8_t **memory, size_t bytes) {
    if (!buffer) buffer = aligned_alloc(64, bytes);
    *memory = buffer;
    return buffer ? 0 : -1;
}
static void keep(uint8_t *memory, size_t bytes) { (void)memory; (void)bytes; }
#endif

static int hash(uint8_t out[OUT_LEN]) {
#ifdef IMPL_PHC
    argon2_context ctx = {
        .out = out, .outlen = OUT_LEN,
        .pwd = (uint8_t *)PASSWORD, .pwdlen = sizeof PASSWORD - 1,
        .salt = (uint8_t *)SALT, .saltlen = sizeof SALT,
        .t_cost = T_COST, .m_cost = M_KIB, .lanes = 1, .threads = 1,
        .version = ARGON2_VERSION_13,
        .allocate_cbk = reuse, .free_cbk = keep,
        .flags = ARGON2_DEFAULT_FLAGS,
    };
    return argon2_ctx(&ctx, Argon2_id);
#else
    return crypto_pwhash(out, OUT_LEN, PASSWORD, sizeof PASSWORD - 1, SALT,
                         T_COST, (size_t)M_KIB * 1024, crypto_pwhash_ALG_ARGON2ID13);
#endif
}

static void *worker(void *arg) {
    (void)arg;
    uint8_t out[OUT_LEN];
    while (now() < until) {
        if (hash(out) != 0 || memcmp(out, expected, OUT_LEN) != 0) {
            fprintf(stderr, "the hash did not verify\n");
            exit(1);
        }
        atomic_fetch_add(&done, 1);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double seconds = argc > 2 ? atof(argv[2]) : 5;
#ifndef IMPL_PHC
    if (sodium_init() < 0) return 1;
#endif
    if (hash(expected) != 0) return 1;
    if (argc > 3) {  /* print the output, to check the implementations agree */
        for (int i = 0; i < OUT_LEN; i++) printf("%02x", expected[i]);
        printf("\n");
        return 0;
    }
    pthread_t t[64];
    double start = now();
    until = start + seconds;
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    printf("%.2f\n", atomic_load(&done) / (now() - start));
    return 0;
}
