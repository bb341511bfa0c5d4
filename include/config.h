/*
 * config.h: every setting of autodeployd, from defaults, a JSON config file, the environment
 * (AUTODEPLOY_*) and flags, in that order of strength: flags beat env beat file beat defaults.
 *
 * The settings live in one table (config.c), which also produces --help and the start-up line,
 * so a setting cannot exist without being documented. A loaded config is read-only; a reload
 * builds a new one and swaps it.
 */
#ifndef AUTODEPLOY_CONFIG_H
#define AUTODEPLOY_CONFIG_H

#include "buf.h"

#include <stddef.h>

/* A repeatable setting: each flag occurrence adds one value; the environment and the config
 * file give a comma-separated string (or, in the file, a JSON array). A higher layer replaces
 * the whole list of a lower one. */
struct strlist {
    char **v;
    size_t n;
};

struct config {
    char *config_file;
    char *listen;
    char *webhook_token;
    char *admin_token;
    /* Other registries' webhooks (sources.h); NULL: that source answers 404. */
    char *harbor_webhook_token;
    char *github_webhook_secret;
    char *dockerhub_webhook_secret;
    char *quay_webhook_secret;
    char *artifactory_webhook_secret;
    char *artifactory_docker_access; /* "repository-path", "subdomain" or "port" */
    char *nexus_webhook_secret;
    char *ecr_webhook_token;
    char *gar_webhook_secret;
    char *acr_webhook_token;
    char *ui_token; /* the console's read views (server.c); NULL: open */
    size_t max_body_bytes;
    long queue_size;
    long dedup_size;
    long recent_pushes;
    long http_threads;
    long max_conns_per_ip; /* 0: no limit */
    long http_timeout_ms;
    char *log_level;
    char *log_format;
    char *slack_webhook_url;
    char *slack_pushes; /* "all", "matched" or "none" */
    /* verifies POST /v1/slack/interactions (approval buttons); NULL: 404 */
    char *slack_signing_secret;
    char *marathon_ui_url;
    long slack_timeout_ms;
    long slack_queue_size;
    long slack_retries;
    char *marathon_url; /* one or more, comma-separated */
    char *marathon_user;
    char *marathon_password;
    char *marathon_token;
    char *marathon_ca_file;
    char *state_file; /* journal of accepted pushes (journal.h); NULL: none */
    long marathon_connect_timeout_ms;
    long marathon_timeout_ms;
    char *label;
    struct strlist registry_alias; /* NAME=HOST */
    int allow_repository_wildcards;
    struct strlist app_prefix;
    int dry_run;
    int force;
    int pin_digest;
    char *verify_push;   /* "require", "warn" or "off" */
    char *registry_auth; /* Docker config.json, NULL: no credentials */
    char *registry_ca;
    struct strlist insecure_registry;
    struct strlist registry_url; /* HOST=URL */
    long registry_timeout_ms;
    int rollback_on_failure;
    long deploy_timeout_ms; /* from Marathon's acceptance of the update to the deployment's end */
    long update_timeout_ms; /* getting the update accepted: locks, 5xx, 403, lost answers */
    long reconcile_interval_ms; /* 0: no reconcile */
    /* a pending approval's default time-out (label autodeploy.approve) */
    long approve_timeout_ms;
    long deploy_workers;
    long poll_interval_ms;
    long shutdown_grace_ms;
};

/* What config_load decided beyond the settings. */
enum config_action { CONFIG_RUN = 0, CONFIG_HELP, CONFIG_VERSION };

/* Builds a config from argv (argv[0] is skipped), envp (NULL-terminated "K=V" strings; NULL
 * means none) and the config file named by --config / AUTODEPLOY_CONFIG. Returns 0 and the
 * action, or -1 with a one-line message naming the setting in err. cfg must be freed with
 * config_free in both cases. */
int config_load(struct config *cfg, int argc, char **argv, char **envp, enum config_action *action,
                char *err, size_t errlen);

/* Frees the strings of cfg; the struct itself may live anywhere. */
void config_free(struct config *cfg);

/* Writes the --help text. */
void config_usage(struct buf *b);

/* Appends the effective configuration as a JSON object, secrets shown as "(set)". */
int config_json_redacted(const struct config *cfg, struct buf *b);

/* The configuration in force: set once at start-up and again by each successful reload.
 * Readers take the pointer when they start a unit of work; a replaced configuration stays
 * allocated until exit, so a reader never sees one freed under it. */
void config_publish(struct config *cfg);
const struct config *config_live(void);

/* Lists in names (", "-separated flags) the settings that differ between old and nw but only
 * take effect after a restart; returns how many. */
int config_restart_needed(const struct config *old, const struct config *nw, struct buf *names);

/* Parses "1048576", "512KiB", "1MiB", "1m"... into bytes. 0 on success, -1 otherwise. */
int config_parse_size(const char *s, size_t *out);

/* Parses "1500ms", "10s", "5m", "1h" or a bare number of seconds into milliseconds. */
int config_parse_duration_ms(const char *s, long *out);

/* Splits "HOST:PORT" or "[V6]:PORT" into its parts. 0 on success. */
int config_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
