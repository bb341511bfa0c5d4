/*
 * journal.h: accepted pushes survive a restart (--state-file).
 *
 * The registry forgets an event once it got a 2xx, so a push acknowledged and then lost in a
 * crash, an OOM kill or a restart during a freeze would never deploy. With a state file, every
 * accepted push is appended to it before the 202 is sent, and marked done once everything it
 * caused has ended (each deployment it started reached an outcome, or it matched nothing).
 * At the next start the pushes not marked done are queued again, in their order, and a pause
 * set by an operator is restored. Replaying is safe: the deployer does nothing to an app that
 * already runs the pushed digest, and follows a deployment of it that still runs.
 *
 * The file is JSON lines, appended with write(2) (no fsync): it survives autodeployd dying in
 * any way, not the machine losing power. It is compacted at start, and whenever nothing is
 * pending and it has grown past 1 MiB. A torn or unreadable line is skipped with a warning.
 *
 * Reference counting: a push starts with one reference (its own, released by the dispatcher
 * when it has matched it), plus one per deployment job (released when the job ends). When the
 * count reaches zero the push is done. Functions taking a NULL journal do nothing.
 */
#ifndef AUTODEPLOY_JOURNAL_H
#define AUTODEPLOY_JOURNAL_H

#include "event.h"

#include <stddef.h>

struct journal;

/* Opens (creating it if needed) the state file at path. Pushes still pending from the last run
 * are returned in *pending (malloc'd, *n_pending of them, each with its journal id set: queue
 * them again as they are) and the pause state in *paused. NULL with a reason in err when the
 * file cannot be read or written. */
struct journal *journal_open(const char *path, struct push **pending, size_t *n_pending,
                             int *paused, char *err, size_t errlen);

/* Records an accepted push and gives it a journal id (p->jid); a push that already has one (a
 * replay) is left as it is. Returns -1 when it cannot be written: the push must then be
 * refused (503), not acknowledged. */
int journal_add(struct journal *j, struct push *p);

/* One more piece of work (a deployment job) for the push with journal id jid. */
void journal_hold(struct journal *j, unsigned long long jid);

/* One piece of work for jid ended; at zero the push is marked done. Unknown ids are ignored. */
void journal_release(struct journal *j, unsigned long long jid);

/* Records the operator's pause, restored at the next start. */
void journal_set_paused(struct journal *j, int paused);

/* Records approval id (approvals.h) as it is now: json is its approval_json(full=1) object.
 * The last record of an id wins; pending ones are always kept, decided ones up to 256 in all
 * (an approved push whose approval was forgotten asks for approval again). -1 when it cannot
 * be written. */
int journal_put_approval(struct journal *j, const char *id, const char *json, int pending);

/* The approvals read from the file at open and recorded since, oldest first: *out is a
 * malloc'd array of malloc'd JSON object texts (the caller frees each and the array). */
size_t journal_approvals(struct journal *j, char ***out);

/* Pushes not yet done (tests, /metrics). */
size_t journal_pending(struct journal *j);

/* Closes the file and frees. Pending pushes stay in the file for the next start. */
void journal_close(struct journal *j);

#endif
