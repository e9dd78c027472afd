/* The rivet executable's subcommands and what they share. */
#ifndef RIVET_RIVET_H
#define RIVET_RIVET_H

#include "config.h"

struct db;

/* Exit codes: 0 done, 1 failed, 2 wrong usage or settings. */
#define EXIT_USAGE 2

/* Loads settings (DATABASE_URL required), connects, and when migrate is set
 * applies the migrations. Prints one line on failure. Returns 0 and *ret,
 * or an exit code. */
int rivet_open_db(struct config *cfg, int migrate, struct db **ret);

int cmd_migrate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_factory(int argc, char **argv);
int cmd_invite(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_ocr(int argc, char **argv);
int cmd_rule(int argc, char **argv);
int cmd_device(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_digest(int argc, char **argv);

struct llm_provider;

/* Reads the LLM providers from the environment (llm_config_load()) into
 * p (LLM_MAX_PROVIDERS entries); *n gets their count, 0 when none is
 * configured. Prints one line on a wrong setting. Returns 0 or EXIT_USAGE. */
int rivet_llm_config(struct llm_provider *p, int *n);

/* Checks a factory name given on the command line: text of 1 to 200
 * characters, no control characters, with a letter or digit. Reports it
 * (naming option) and returns 0 when it is not. */
int factory_name_ok(const char *cmd, const char *option, const char *name);

/* Reports a wrong argument: prints "rivet CMD: msg" and the usage hint.
 * Returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *msg);
/* The same for the option getopt_long() just refused (opterr is 0, so
 * getopt itself prints nothing). */
int bad_option(const char *cmd, char **argv);

#endif
