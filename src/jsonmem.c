/*
 * jsonmem.c: see jsonmem.h.
 */
#include "jsonmem.h"

#include <cjson/cJSON.h>
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

/* Static TLS: a thread that never parses a webhook never touches its pages. */
static __thread _Alignas(16) unsigned char arena[ARENA_BYTES];
static __thread size_t used;
static __thread int active;

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
    if (a >= lo && a < lo + ARENA_BYTES) return; /* released as a whole at the scope's end */
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
    active = !ARENA_OFF;
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
