/*
 * jsonmem.c: see jsonmem.h.
 */
#include "jsonmem.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_OFF 1
#endif
#endif
#ifndef ARENA_OFF
#define ARENA_OFF 0
#endif

#define ARENA_BYTES (48 * 1024) /* a typical envelope needs 10-20 KiB */

/* Allocated on a thread's first scope (only the HTTP server's threads have one), freed when
 * the thread exits. Not static TLS: glibc would zero that in every thread at its start. */
static __thread unsigned char *arena;
static __thread size_t used;
static __thread int active;
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_key_make(void)
{
    pthread_key_create(&arena_key, free);
}

static void *arena_malloc(size_t n)
{
    if (active) {
        size_t need = (n + 15) & ~(size_t)15;
        if (need >= n && ARENA_BYTES - used >= need) {
            void *p = arena + used;
            used += need;
            return p;
        }
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)arena;
    if (arena && a >= lo && a < lo + ARENA_BYTES) return; /* released with the scope */
    free(p);
}

void json_arena_install(void)
{
    cJSON_Hooks h = {arena_malloc, arena_free};
    cJSON_InitHooks(&h);
}

void json_arena_begin(void)
{
    used = 0;
    if (ARENA_OFF) return;
    if (!arena) {
        pthread_once(&arena_once, arena_key_make);
        arena = malloc(ARENA_BYTES);
        if (!arena) return; /* plain malloc then */
        pthread_setspecific(arena_key, arena);
    }
    active = 1;
}

void json_arena_end(void)
{
    active = 0;
    used = 0;
}

unsigned long json_arena_used(void)
{
    return (unsigned long)used;
}
