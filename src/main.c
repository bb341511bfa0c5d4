/*
 * main.c: start-up, signals and shutdown.
 *
 * Order of life: configuration (exit 2 on any bad value), logging, the HTTP client, the push
 * queue, Slack, Marathon (client, event follower, deployer), the HTTP server; then wait for a
 * signal. Shutdown runs the other way: stop accepting, stop the deployer (running deployments
 * get a bounded grace), stop following, flush Slack, free.
 *
 * SIGTERM, SIGINT and SIGHUP are blocked before the first thread starts, so every thread
 * inherits the block and only the main thread takes them, inside sigsuspend: the handlers set
 * flags, and the main loop sleeps until a signal comes instead of polling those flags.
 */
#include "buf.h"
#include "config.h"
#include "deploy.h"
#include "follow.h"
#include "httpc.h"
#include "journal.h"
#include "jsonmem.h"
#include "log.h"
#include "marathon.h"
#include "match.h"
#include "registry.h"
#include "metrics.h"
#include "queue.h"
#include "report.h"
#include "server.h"
#include "slack.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    reload_requested = 1;
}

static double queue_depth(void *ctx)
{
    return (double)pushq_depth(ctx);
}

static double paused_gauge(void *ctx)
{
    return pushq_paused(ctx) ? 1 : 0;
}

/* Without --marathon-url nothing can be deployed: pushes are recorded and announced. */
static void *record_only_main(void *arg)
{
    struct pushq *q = arg;
    struct push p;
    while (pushq_take(q, &p) == 0) {
        pushq_set_state(q, &p, "received");
        log_info("push received (no --marathon-url: nothing deployed)", "event_id", p.event_id,
                 "registry", p.host, "repository", p.repository, "tag", p.tag, "digest", p.digest,
                 NULL);
        struct report r;
        memset(&r, 0, sizeof r);
        r.kind = REPORT_PUSHED;
        r.push = p;
        r.instances = -1;
        report_emit(&r);
    }
    return NULL;
}

static double journal_gauge(void *ctx)
{
    return (double)journal_pending(ctx);
}

static int journal_accepted(struct push *p, void *ctx)
{
    return journal_add(ctx, p);
}

static void journal_paused(int paused, void *ctx)
{
    journal_set_paused(ctx, paused);
}

/* Opens the state file, restores the pause and queues again the pushes the last run accepted
 * and did not finish. NULL (after logging why) when the file cannot be used. */
static struct journal *restore(const struct config *cfg, struct pushq *q)
{
    struct push *pending = NULL;
    size_t n = 0;
    int paused = 0;
    char err[512];
    struct journal *j = journal_open(cfg->state_file, &pending, &n, &paused, err, sizeof err);
    if (!j) {
        log_error("cannot use the state file", "error", err, NULL);
        return NULL;
    }
    struct pushq_hooks h = {journal_accepted, journal_paused, j};
    pushq_set_hooks(q, &h);
    metrics_declare_gauge_fn("autodeploy_state_pending",
                             "Accepted pushes whose work has not ended (kept in --state-file).",
                             journal_gauge, j);
    if (paused) {
        pushq_set_paused(q, 1);
        log_warn("deployments stay paused: an operator paused them before the restart "
                 "(POST /v1/resume to resume)",
                 NULL);
        struct report rep; /* the channel learns that the freeze outlived the restart */
        memset(&rep, 0, sizeof rep);
        rep.kind = REPORT_PAUSED;
        rep.instances = -1;
        snprintf(rep.reason, sizeof rep.reason,
                 "an operator before autodeployd restarted (kept in --state-file)");
        report_emit(&rep);
    }
    size_t queued = 0;
    for (size_t i = 0; i < n; i++) {
        enum pushq_result r = pushq_offer(q, &pending[i]);
        if (r == PUSHQ_ACCEPTED) {
            queued++;
            continue;
        }
        if (r == PUSHQ_DUPLICATE) { /* the same push is already queued from the file */
            journal_release(j, pending[i].jid);
            continue;
        }
        log_warn("push from the state file not queued (queue full); kept for the next start",
                 "repository", pending[i].repository, "tag", pending[i].tag, "digest",
                 pending[i].digest, NULL);
    }
    if (queued) {
        char c[24];
        snprintf(c, sizeof c, "%zu", queued);
        log_info("pushes accepted before the restart and not finished are queued again", "count", c,
                 "state_file", cfg->state_file, NULL);
    }
    free(pending);
    return j;
}

/* Configurations replaced by a reload stay allocated until exit: a thread may still be
 * reading the one it took when its work began. */
struct retired {
    struct config cfg;
    struct retired *next;
};

/* SIGHUP: reads the configuration again (file, environment, flags). A bad file keeps the
 * running configuration. Settings that only apply at start-up are reported. */
static struct config *reload(int argc, char **argv, const struct config *boot,
                             struct retired **list)
{
    struct retired *r = calloc(1, sizeof *r);
    enum config_action action;
    char err[512];
    if (!r) return NULL;
    if (config_load(&r->cfg, argc, argv, environ, &action, err, sizeof err) < 0) {
        log_error("configuration reload failed; keeping the running configuration", "error", err,
                  NULL);
        config_free(&r->cfg);
        free(r);
        return NULL;
    }
    struct buf names, cj;
    buf_init(&names, 4096);
    buf_init(&cj, 64 * 1024);
    if (config_restart_needed(boot, &r->cfg, &names))
        log_warn("configuration reload: these settings changed but apply only after a restart",
                 "settings", names.data, NULL);
    config_json_redacted(&r->cfg, &cj);
    log_setup((enum log_level)log_level_parse(r->cfg.log_level),
              (enum log_format)log_format_parse(r->cfg.log_format));
    log_info("configuration reloaded", "config", cj.data, NULL);
    buf_free(&names);
    buf_free(&cj);
    r->next = *list;
    *list = r;
    return &r->cfg;
}

static void log_report(const struct report *r, void *ctx)
{
    (void)ctx;
    log_debug("report", "kind", report_kind_name(r->kind), "app", r->app_id, "repository",
              r->push.repository, "tag", r->push.tag, "reason", r->reason, NULL);
}

/* What main starts, in the order it stops them (stop_parts). */
struct parts {
    struct pushq *q;
    struct slack *slack;
    struct marathon *mar;
    struct follower *fol;
    struct deployer *dep;
    struct journal *journal;
    pthread_t recorder;
    int recorder_started;
};

/* --help or --version on stdout. */
static void print_help_or_version(enum config_action action)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (action == CONFIG_HELP)
        config_usage(&b);
    else
        buf_printf(&b, "autodeployd %s\n", AUTODEPLOY_VERSION);
    fwrite(b.data, 1, b.len, stdout);
    buf_free(&b);
}

/* Installs the handlers and blocks their signals in this thread and every thread it starts;
 * *wait_mask is the mask that lets them in, for sigsuspend (see the top of the file). */
static void install_signals(sigset_t *wait_mask)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &handled, wait_mask);
    sigdelset(wait_mask, SIGTERM);
    sigdelset(wait_mask, SIGINT);
    sigdelset(wait_mask, SIGHUP);
}

/* The deployer and what it needs (Marathon, the event stream, the state file), or without a
 * Marathon the thread that only records pushes. 0, or main's exit status. */
static int start_workers(const struct config *cfg, struct parts *p)
{
    char err[512];
    if (cfg->marathon_url) {
        p->mar = marathon_new(cfg, err, sizeof err);
        p->fol = p->mar ? follower_new(p->mar) : NULL;
        p->dep = p->fol ? deployer_new(cfg, p->q, p->mar, p->fol, err, sizeof err) : NULL;
        if (!p->dep) {
            log_error("cannot set up the Marathon deployer", "error", err, NULL);
            return 2;
        }
        if (cfg->state_file) {
            p->journal = restore(cfg, p->q);
            if (!p->journal) return 2;
            deployer_set_journal(p->dep, p->journal);
        }
        if (follower_start(p->fol) < 0 || deployer_start(p->dep) < 0) {
            log_error("cannot start the deployer threads", NULL);
            return 1;
        }
        return 0;
    }
    if (cfg->state_file)
        log_warn("--state-file is not used without --marathon-url (nothing is deployed)", NULL);
    if (pthread_create(&p->recorder, NULL, record_only_main, p->q) != 0) {
        log_error("cannot start the worker thread", NULL);
        return 1;
    }
    p->recorder_started = 1;
    return 0;
}

/* The queue, the metrics, the report sinks and the workers. 0, or main's exit status. */
static int start_parts(const struct config *cfg, struct parts *p)
{
    char err[512];
    p->q = pushq_new((size_t)cfg->queue_size, (size_t)cfg->dedup_size, (size_t)cfg->recent_pushes);
    if (!p->q) {
        log_error("out of memory creating the push queue", NULL);
        return 1;
    }
    metrics_declare("autodeploy_build_info", "gauge", "Build information; always 1.");
    metrics_set("autodeploy_build_info", "version", AUTODEPLOY_VERSION, 1);
    metrics_declare_gauge_fn("autodeploy_queue_depth", "Pushes waiting in the queue.", queue_depth,
                             p->q);
    metrics_declare_gauge_fn("autodeploy_paused", "1 while an operator has paused deployments.",
                             paused_gauge, p->q);
    report_add_sink(log_report, NULL);
    if (cfg->slack_webhook_url) {
        p->slack = slack_new(cfg, err, sizeof err);
        if (!p->slack) {
            log_error("cannot set up Slack notifications", "error", err, NULL);
            return 2;
        }
        report_add_sink(slack_report_sink, p->slack);
    }
    return start_workers(cfg, p);
}

/* "autodeployd started" with the address really listened on and the settings (secrets
 * redacted), and the warnings about what is not configured. */
static void log_started(const struct config *cfg, struct server *srv)
{
    struct buf cj;
    buf_init(&cj, 64 * 1024);
    config_json_redacted(cfg, &cj);
    char host[128], addr[160];
    int port;
    config_split_hostport(cfg->listen, host, sizeof host, &port);
    snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, server_port(srv));
    log_always(LOG_INFO, "autodeployd started", "version", AUTODEPLOY_VERSION, "listen", addr,
               "config", cj.data, NULL);
    buf_free(&cj);
    if (!cfg->webhook_token)
        log_warn("no --webhook-token set: anyone who can reach the webhook can trigger "
                 "deployments",
                 NULL);
    if (!cfg->marathon_url)
        log_warn("no --marathon-url set: pushes are recorded and announced, nothing is deployed",
                 NULL);
}

/* Runs until SIGTERM or SIGINT, reloading the settings on SIGHUP. The flags are read while the
 * signals are blocked; sigsuspend lets them in and returns once a handler has run, so a signal
 * that comes between the check and the wait is not lost. */
static void serve_until_stopped(int argc, char **argv, const struct config *cfg,
                                struct retired **retired, const sigset_t *wait_mask)
{
    while (!stop_requested) {
        if (reload_requested) {
            reload_requested = 0;
            struct config *n = reload(argc, argv, cfg, retired);
            if (n) config_publish(n);
            continue;
        }
        sigsuspend(wait_mask);
    }
    char grace[32];
    snprintf(grace, sizeof grace, "%ldms", config_live()->shutdown_grace_ms);
    log_info("stopping: no new requests; running deployments get the grace period", "grace", grace,
             NULL);
}

/* Says what is still queued at exit: kept in the state file, or lost. */
static void report_left(struct pushq *q, int journaled)
{
    struct push left;
    while (q && pushq_take_nowait(q, &left) == 0) {
        if (journaled)
            log_info("push not deployed yet: kept in the state file for the next start", "event_id",
                     left.event_id, "repository", left.repository, "tag", left.tag, "digest",
                     left.digest, NULL);
        else
            log_warn("push not deployed: still queued at exit (the registry will not resend it; "
                     "push again or replay the event, or use --state-file)",
                     "event_id", left.event_id, "registry", left.host, "repository",
                     left.repository, "tag", left.tag, "digest", left.digest, NULL);
    }
}

/* Stops and frees what start_parts started (any of it may be missing). */
static void stop_parts(struct parts *p)
{
    if (p->dep) deployer_stop(p->dep, config_live() ? config_live()->shutdown_grace_ms : 0);
    if (p->q) pushq_close(p->q);
    if (p->recorder_started) pthread_join(p->recorder, NULL);
    report_left(p->q, p->journal != NULL);
    deployer_free(p->dep);
    follower_free(p->fol);
    marathon_free(p->mar);
    report_clear_sinks();
    slack_free(p->slack);
    pushq_free(p->q);
    journal_close(p->journal);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "match") == 0) return match_cli_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "registry") == 0) return registry_cli_main(argc - 1, argv + 1);
    json_arena_install();

    struct config cfg;
    enum config_action action;
    char err[512];
    if (config_load(&cfg, argc, argv, environ, &action, err, sizeof err) < 0) {
        fprintf(stderr, "autodeployd: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (action != CONFIG_RUN) {
        print_help_or_version(action);
        config_free(&cfg);
        return 0;
    }
    log_setup((enum log_level)log_level_parse(cfg.log_level),
              (enum log_format)log_format_parse(cfg.log_format));
    config_publish(&cfg);
    if (httpc_global_init() < 0) {
        log_error("cannot initialise the HTTP client", NULL);
        config_free(&cfg);
        return 1;
    }
    sigset_t wait_mask;
    install_signals(&wait_mask);

    struct parts parts = {0};
    struct server *srv = NULL;
    struct retired *retired = NULL;
    int rc = start_parts(&cfg, &parts);
    if (rc == 0) {
        srv = server_start(&cfg, parts.q, parts.dep, err, sizeof err);
        if (!srv) log_error("cannot start the HTTP server", "error", err, NULL);
        rc = srv ? 0 : 1;
    }
    if (rc == 0) {
        log_started(&cfg, srv);
        serve_until_stopped(argc, argv, &cfg, &retired, &wait_mask);
    }
    server_stop(srv);
    stop_parts(&parts);
    config_publish(NULL);
    while (retired) {
        struct retired *r = retired;
        retired = r->next;
        config_free(&r->cfg);
        free(r);
    }
    config_free(&cfg);
    httpc_global_cleanup();
    if (rc == 0) log_always(LOG_INFO, "stopped", NULL);
    return rc;
}
