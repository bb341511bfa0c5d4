/*
 * follow.h: knowing how a Marathon deployment really ended.
 *
 * One shared connection to GET /v2/events (reconnected with backoff) delivers
 * deployment_success, deployment_failed and status_update_event; deployers register the
 * deployments they wait for and sleep until an outcome arrives. Events for deployments nobody
 * waits for yet are remembered briefly, because a fast deployment can end before its deployer
 * has registered. While the stream is down, waiters poll GET /v2/deployments themselves
 * (follower_connected tells them).
 */
#ifndef AUTODEPLOY_FOLLOW_H
#define AUTODEPLOY_FOLLOW_H

#include "config.h"
#include "marathon.h"

#include <stdint.h>

struct follower;

enum follow_outcome { FOLLOW_PENDING = 0, FOLLOW_SUCCEEDED, FOLLOW_FAILED };

struct follower *follower_new(struct marathon *m);

/* Starts the event-stream thread. */
int follower_start(struct follower *f);

/* Stops the thread (closing the stream), wakes every waiter with FOLLOW_PENDING, and frees. */
void follower_free(struct follower *f);

/* 1 while the event stream is attached. */
int follower_connected(struct follower *f);

/* Counts stream attachments: a change means the stream was re-established and the events of
 * the gap are lost, so waiters should check by polling. */
unsigned follower_generation(struct follower *f);

/* Wakes every waiter now and makes later waits return at once (shutdown). */
void follower_interrupt(struct follower *f);

/* Registers interest in a deployment of app_id. Returns a watch id (> 0), or -1. */
int follower_watch(struct follower *f, const char *deployment_id, const char *app_id);

/* Waits until the watched deployment ends or deadline_ms (monotonic, see follower_now_ms)
 * passes, or at most max_wait_ms. Returns its outcome (PENDING: not known yet); reason and
 * task_message receive Marathon's reason and the app's last task failure message, if any. */
enum follow_outcome follower_wait(struct follower *f, int watch, int64_t deadline_ms,
                                  long max_wait_ms, char *reason, size_t reason_len,
                                  char *task_message, size_t task_len);

/* Settles a watch from outside (a poll found the deployment gone). */
void follower_settle(struct follower *f, int watch, enum follow_outcome o, const char *reason);

/* Forgets a watch. */
void follower_unwatch(struct follower *f, int watch);

/* Monotonic milliseconds. */
int64_t follower_now_ms(void);

/* Feeds one event as if it came from the stream (tests, and the poller). */
void follower_handle_event(struct follower *f, const char *type, const char *data, size_t len);

#endif
