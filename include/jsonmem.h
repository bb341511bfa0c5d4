/*
 * jsonmem.h: a per-thread bump allocator for cJSON on the webhook's hot path.
 *
 * Parsing one notification envelope makes cJSON allocate a node, a key and often a string per
 * member: about a hundred malloc/free pairs per request, most of the webhook's own CPU time.
 * Between json_arena_begin and json_arena_end, cJSON allocations on the calling thread come
 * from a fixed per-thread block instead (falling back to malloc when it is full) and their
 * frees cost nothing; the block is reused by the next request.
 *
 * Rule: a cJSON value parsed inside the scope must be deleted inside it, on the same thread
 * (event_parse_envelope does: it copies what it keeps into fixed-size fields). Outside any
 * scope, and in sanitizer builds (so that ASan sees every allocation), cJSON uses malloc.
 */
#ifndef AUTODEPLOY_JSONMEM_H
#define AUTODEPLOY_JSONMEM_H

/* Routes cJSON's allocations through the arena hooks. Safe at any time: memory cJSON got from
 * malloc before is still freed with free. */
void json_arena_install(void);

void json_arena_begin(void);
void json_arena_end(void);

/* Bytes handed out from the arena in the current scope (tests). */
unsigned long json_arena_used(void);

#endif
