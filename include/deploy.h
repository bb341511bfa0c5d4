/*
 * deploy.h: from an accepted push to finished Marathon deployments.
 *
 * A dispatcher thread takes pushes from the queue, lists the apps carrying the label, matches
 * each app's patterns, and hands one job per matching app to a bounded pool of workers.
 * Deploys to one app are serialized: while one runs, only the newest waiting push (by event
 * timestamp) is kept and the others are reported superseded. A worker re-reads the app, builds
 * the partial update (the app's full container with only the image changed, its full labels
 * with autodeploy.* set), sends it, and follows the deployment to its end.
 */
#ifndef AUTODEPLOY_DEPLOY_H
#define AUTODEPLOY_DEPLOY_H

#include "buf.h"
#include "config.h"
#include "event.h"
#include "follow.h"
#include "marathon.h"
#include "queue.h"

struct deployer;

/* cfg, q, m and f must outlive the deployer. NULL with a reason in err. */
struct deployer *deployer_new(const struct config *cfg, struct pushq *q, struct marathon *m,
                              struct follower *f, char *err, size_t errlen);

/* Starts the dispatcher and the workers. */
int deployer_start(struct deployer *d);

/* Tells the deployer when each push's work has ended (journal.h); call before starting it. */
struct journal;
void deployer_set_journal(struct deployer *d, struct journal *j);

/* Stops taking pushes and jobs; gives running jobs until grace_ms to end (what is still
 * running in Marathon then is reported as interrupted), joins the threads. */
void deployer_stop(struct deployer *d, long grace_ms);

void deployer_free(struct deployer *d);

/* Appends {"deployments":[...]}: the most recent deployment records, newest first. */
int deployer_records_json(struct deployer *d, struct buf *b);

/* Appends what a push of image_ref ("[host/]repository:tag") would do, changing nothing:
 * {"image":...,"apps":[{"id","current_image","new_image","action","reason"}]}. Returns the
 * HTTP status to answer (200, 400 for a bad reference, 502 when Marathon cannot be read). */
int deployer_plan_json(struct deployer *d, const char *image_ref, struct buf *b);

/* Appends "marathon":"reachable|unreachable|unknown","event_stream":"attached|down" (and
 * "marathon_error" when unreachable) and returns 1 when Marathon is reachable. */
int deployer_health_json(struct deployer *d, struct buf *b);

/* Declares the deployer's metric families. */
void deployer_metrics_declare(void);

#endif
