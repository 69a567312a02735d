/* portico(8): parse the command line, load the configuration, then hand
 * over to the master (or just check, print, or signal). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "portico/config.h"
#include "portico/diag.h"
#include "portico/log.h"
#include "portico/master.h"
#include "portico/pidfile.h"
#include "portico/preflight.h"
#include "portico/rlimit.h"
#include "portico/secret.h"
#include "portico/tls.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: portico [-fhtTV] [-c file] [-p pidfile] [-s signal] [-w workers] [-l level]\n"
            "  -c, --config FILE     configuration file (default %s)\n"
            "  -t, --test            check the configuration and exit\n"
            "  -T, --dump            check, then print the effective configuration\n"
            "  -s, --signal SIGNAL   send reload, stop, quit or reopen to the running master\n"
            "  -p, --pid-file FILE   pid file (default: pid_file in the configuration)\n"
            "  -f, --foreground      stay in the foreground, log to stderr (for systemd)\n"
            "  -w, --workers N       number of worker processes (overrides workers:)\n"
            "  -l, --log-level LEVEL crit, error, warn, notice, info or debug\n"
            "  -V, --version         print the version and build options\n"
            "  -h, --help            print this help\n",
            PT_CONF_PATH);
}

/* Loads the file and checks it as -t does: the file, its TLS files and
 * the descriptors it may need, then, when machine is set, its user and log
 * files on this machine; hints adds -t's notes on what may not do what
 * was meant.  Prints every diagnostic to stderr; NULL when there were
 * errors. */
static pt_config_t *check(const char *path, bool machine, bool hints)
{
    pt_diag_t d;
    pt_diag_init(&d);
    pt_config_t *c = pt_config_load(path, &d);
    if (c && (pt_tls_build(c, &d) < 0 || (machine && pt_preflight_check(c, &d) > 0))) {
        pt_diag_sort(&d);
        pt_config_free(c);
        c = NULL;
    }
    if (c)
        pt_rlimit_check(c, &d);
    if (c && hints)
        pt_config_hints(c, &d);
    pt_diag_print(&d, stderr);
    pt_diag_free(&d);
    return c;
}

/* conf_path is the file given with -c or the default one; conf_given says
 * which. */
static int send_signal(const char *name, const char *pid_file, const char *conf_path, bool conf_given)
{
    static const struct {
        const char *name;
        int sig;
    } sigs[] = {{"reload", SIGHUP}, {"stop", SIGTERM}, {"quit", SIGQUIT}, {"reopen", SIGUSR1}};
    int sig = 0;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (strcmp(name, sigs[i].name) == 0)
            sig = sigs[i].sig;
    if (!sig) {
        fprintf(stderr, "portico: -s takes reload, stop, quit or reopen, not \"%s\"\n", name);
        return 2;
    }
    pt_config_t *c = NULL;
    if (sig == SIGHUP && (conf_given || !pid_file)) {
        /* A file the master would refuse is reported here, where someone
         * reads it, and nothing is signalled: as nginx -s reload does.
         * With -p alone, which file the master reads is not known here;
         * it checks that file itself. */
        c = check(conf_path, true, false);
        if (!c) {
            fprintf(stderr, "portico: configuration has errors: %s; not reloading\n", conf_path);
            return 1;
        }
    } else if (!pid_file) {
        /* To stop or reopen, a file with errors will do: what is wrong
         * with it must not keep a running gateway from stopping. */
        pt_diag_t d;
        pt_diag_init(&d);
        c = pt_config_load(conf_path, &d);
        pt_diag_free(&d);
    }
    if (!pid_file) /* as nginx does: the pid file is named in the configuration */
        pid_file = c && c->pid_file ? c->pid_file : "/run/portico/portico.pid";
    pid_t pid = pt_pidfile_read(pid_file);
    int rc = 0;
    char shown[4096];
    if (pid <= 0) {
        fprintf(stderr, "portico: no pid in %s%s%s: is portico running?\n",
                pt_secret_masked(pid_file, shown, sizeof(shown)), pid < 0 ? ": " : "", pid < 0 ? strerror(-pid) : "");
        rc = 1;
    } else if (kill(pid, sig) < 0) {
        fprintf(stderr, "portico: cannot signal pid %d from %s: %s\n", (int)pid,
                pt_secret_masked(pid_file, shown, sizeof(shown)), strerror(errno));
        rc = 1;
    }
    pt_config_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},    {"test", no_argument, NULL, 't'},
        {"dump", no_argument, NULL, 'T'},            {"signal", required_argument, NULL, 's'},
        {"pid-file", required_argument, NULL, 'p'},  {"foreground", no_argument, NULL, 'f'},
        {"workers", required_argument, NULL, 'w'},   {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    pt_opts_t o = {.conf_path = PT_CONF_PATH, .log_level = -1};
    bool test = false, dump = false, conf_given = false;
    const char *sig = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:tTs:p:fw:l:Vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o.conf_path = optarg;
            conf_given = true;
            break;
        case 't':
            test = true;
            break;
        case 'T':
            dump = true;
            break;
        case 's':
            sig = optarg;
            break;
        case 'p':
            o.pid_file = optarg;
            break;
        case 'f':
            o.foreground = true;
            break;
        case 'w': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "portico: -w takes a number of workers from 1 to 256, not \"%s\"\n", optarg);
                return 2;
            }
            o.workers = (int)n;
            break;
        }
        case 'l':
            o.log_level = pt_log_level_parse(optarg);
            if (o.log_level < 0) {
                fprintf(stderr, "portico: -l takes crit, error, warn, notice, info or debug, not \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case 'V':
            printf("portico %s\nbuild options: %s\nconfiguration file: %s\n", PACKAGE_VERSION,
                   *PT_BUILD_OPTIONS ? PT_BUILD_OPTIONS : "(none)", PT_CONF_PATH);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "portico: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (sig)
        return send_signal(sig, o.pid_file, o.conf_path, conf_given);
    if (o.log_level >= 0)
        pt_log_level = o.log_level;

    /* -T alone prints a configuration, maybe for another machine: the
     * file is checked, not this machine's users and directories */
    pt_config_t *c = check(o.conf_path, test || !dump, test || dump);
    if (!c) {
        if (test || dump)
            fprintf(stderr, "portico: configuration has errors: %s\n", o.conf_path);
        return 1;
    }
    if (test || dump) {
        if (dump)
            pt_config_dump(stdout, c);
        fprintf(stderr, "portico: configuration ok: %s\n", o.conf_path);
        pt_config_free(c);
        return 0;
    }
    return pt_master_run(&o, c);
}
