/* Return codes shared by every module: 0 is success, a negative PT_E* is
 * the reason for failure.  PT_EAGAIN means "would block", not failure. */
#ifndef PORTICO_ERR_T_H
#define PORTICO_ERR_T_H

enum pt_err {
    PT_OK = 0,
    PT_EAGAIN = -1,   /* incomplete input or would block: call again later */
    PT_ENOMEM = -2,   /* out of memory or arena budget                      */
    PT_EINVAL = -3,   /* malformed input                                    */
    PT_EIO = -4,      /* system call failed; errno tells why                */
    PT_ECLOSED = -5,  /* peer closed the connection                         */
    PT_ETIMEDOUT = -6,
    PT_ETOOBIG = -7,  /* input exceeds a configured limit                   */
    PT_ENOTFOUND = -8,
};

#endif
