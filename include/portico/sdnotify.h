/* The systemd readiness protocol (sd_notify(3)): one datagram to the
 * socket named by $NOTIFY_SOCKET.  Written here rather than linking
 * libsystemd, as HAProxy and pgbouncer do; the protocol is stable. */
#ifndef PORTICO_SDNOTIFY_H
#define PORTICO_SDNOTIFY_H

/* Sends the message (e.g. "READY=1\nSTATUS=serving").  Returns 0, or
 * -errno; without $NOTIFY_SOCKET it does nothing and returns 0. */
int pt_sdnotify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
