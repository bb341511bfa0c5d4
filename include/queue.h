/*
 * queue.h: the bounded queue between the webhook and the deploy workers, with the memory of
 * what was already seen.
 *
 * The registry delivers at least once: it re-sends an event (same id) after any failure or
 * timeout, and a re-push of an unchanged image produces a new event with the same digest. Both
 * are answered as duplicates and never queued twice. A tag pushed again with another digest (a
 * mutable tag moving, or moving back) is new. A push without a digest (sources whose webhook
 * carries none) is a duplicate only by its event id, and makes the next push of its tag new
 * whatever its digest. The memory for this is bounded: the oldest keys
 * are forgotten first, and what is forgotten is still caught later by the deployer, which does
 * nothing when an app already runs the pushed digest.
 *
 * When the queue is full, offers fail with PUSHQ_FULL and nothing is remembered, so the
 * registry's retry of the same event is accepted once there is room again.
 */
#ifndef AUTODEPLOY_QUEUE_H
#define AUTODEPLOY_QUEUE_H

#include "buf.h"
#include "event.h"

#include <stddef.h>
#include <stdint.h>

struct pushq;

/* PUSHQ_UNSAVED: the accepted hook (the state file) failed; nothing was queued or remembered. */
enum pushq_result { PUSHQ_ACCEPTED = 0, PUSHQ_DUPLICATE, PUSHQ_FULL, PUSHQ_UNSAVED };

/* Called under the queue's lock, so in acceptance order and before any taker can see the push:
 * accepted gets the queued copy (it may set p->jid) and returns -1 to refuse it; paused gets
 * every change of the pause. Either may be NULL. */
struct pushq_hooks {
    int (*accepted)(struct push *p, void *ctx);
    void (*paused)(int paused, void *ctx);
    void *ctx;
};

/* capacity: pushes waiting at most; dedup: event ids and repository:tag keys remembered;
 * recent: accepted pushes kept for GET /v1/pushes. NULL when out of memory. */
struct pushq *pushq_new(size_t capacity, size_t dedup, size_t recent);

/* Frees the queue and anything still in it. No thread may be using it. NULL is a no-op. */
void pushq_free(struct pushq *q);

/* Installs hooks (before any offer; not thread-safe against offers). */
void pushq_set_hooks(struct pushq *q, const struct pushq_hooks *h);

/* Offers one push, copied. Thread-safe; never blocks on I/O. */
enum pushq_result pushq_offer(struct pushq *q, const struct push *p);

/* Remembers a push found another way (reconcile) as if it had been accepted, without queueing
 * it: a notification of the same repository:tag and digest arriving later is a duplicate, and
 * GET /v1/pushes lists it with state. Sets p->seq. Returns PUSHQ_ACCEPTED when it was new,
 * PUSHQ_DUPLICATE when a push of that digest was already seen. Thread-safe; no I/O. */
enum pushq_result pushq_remember(struct pushq *q, struct push *p, const char *state);

/* Waits for the next push and copies it to out. Returns 0 with a push, -1 once the queue is
 * closed (what was still queued stays unread). While paused, waits even if pushes are queued. */
int pushq_take(struct pushq *q, struct push *out);

/* Takes the next push without waiting, even after close (to account for what is left at
 * exit). Returns 0 with a push, -1 when the queue is empty. */
int pushq_take_nowait(struct pushq *q, struct push *out);

/* Wakes every waiting pushq_take with -1; later offers still queue (so a restart of workers
 * could resume), and takes return -1 at once. */
void pushq_close(struct pushq *q);

/* Holds (1) or releases (0) the workers; offers go on being accepted until the queue is full. */
void pushq_set_paused(struct pushq *q, int paused);
int pushq_paused(struct pushq *q);

/* Pushes waiting now. */
size_t pushq_depth(struct pushq *q);

/* Records what became of an accepted push (as returned by pushq_take: its seq identifies it),
 * e.g. "dispatched", shown by pushq_recent_json. Forgotten pushes are ignored. */
void pushq_set_state(struct pushq *q, const struct push *p, const char *state);

/* Appends {"pushes":[...]} with the most recent accepted pushes, newest first. */
int pushq_recent_json(struct pushq *q, struct buf *b);

#endif
