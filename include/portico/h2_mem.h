/* The memory of an idle HTTP/2 session.
 *
 * nghttp2 keeps two page-sized things for the whole life of a session,
 * however idle: a frame buffer of 16 KiB (a frame header and the largest
 * payload), whose bytes are dead between frames, and a hash table of
 * streams (4 KiB), all zeros when no stream is left in it; every page
 * either ever touched stays resident.  The session is given an allocator
 * (pt_h2_mem_allocator) that places them on whole pages and remembers
 * them.  A session with no stream and nothing to send is listed as idle
 * (pt_h2_mem_idle); once it has been idle for PT_H2_MEM_IDLE_MS, the
 * worker's heartbeat (pt_h2_mem_trim) gives back the frame buffer's pages
 * and those of the other blocks that read all zeros (MADV_DONTNEED: they
 * read as zeros when touched again, so nothing changes for nghttp2).  A
 * stream, or a frame to send, takes the session off the list
 * (pt_h2_mem_busy). */
#ifndef PORTICO_H2_MEM_H
#define PORTICO_H2_MEM_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PT_H2_MEM_IDLE_MS 1000

#define PT_H2_MEM_BLOCKS 4

typedef struct pt_h2_mem {
    struct {
        void *p; /* page aligned */
        size_t n;
    } blk[PT_H2_MEM_BLOCKS]; /* the big ones, at least a page */
    int fbuf;                /* which is nghttp2's frame buffer, or -1 */
    struct pt_h2_mem *prev, *next; /* on the idle list, oldest first */
    bool listed;
    int64_t idle_since_ms;
} pt_h2_mem_t;

/* The allocator for nghttp2_session_server_new3: m must outlive the
 * session (it is the session's own); m is initialised here. */
nghttp2_mem pt_h2_mem_allocator(pt_h2_mem_t *m);
/* No stream, nothing queued or pending in nghttp2 (its frame buffer is
 * dead): listed, if it was not. */
void pt_h2_mem_idle(pt_h2_mem_t *m, int64_t now_ms);
/* Work again (or the session ends): off the list. */
void pt_h2_mem_busy(pt_h2_mem_t *m);
/* The heartbeat: sessions idle for PT_H2_MEM_IDLE_MS give their pages
 * back.  Returns how many pages went back. */
size_t pt_h2_mem_trim(int64_t now_ms);

#endif
