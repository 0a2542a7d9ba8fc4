/* SPDX-License-Identifier: MIT */
/* strerror.c - tm_strerror: a static name for every tidemark code and
 * -errno.  No buffer and no locale: glibc's strerrordesc_np returns the
 * constant English text, so the result is safe from any thread. */
#include <string.h>

#include "tidemark/errors.h"

static const char *
project_strerror(int code)
{
    switch ((enum tm_err_code)code) {
    case TM_E_CORRUPT:
        return "structure fails validation";
    case TM_E_UNSUPPORTED:
        return "unsupported feature";
    case TM_E_POISONED:
        return "handle poisoned by a failed metadata write";
    case TM_E_RCT_FOREIGN_WRITE:
        return "disk changed without change tracking";
    case TM_E_PROTO:
        return "protocol violation by peer";
    case TM_E_TRUNCATED:
        return "file ends before the structure does";
    case TM_E_READONLY:
        return "handle is read-only";
    case TM_E_RANGE:
        return "offset or length out of range";
    case TM_E_INVALID:
        return "invalid argument";
    case TM_E_FAULT_INJECTED:
        return "injected fault";
    case TM_E_LOCKED:
        return "file is in use by another program (locked)";
    case TM_E_RCT_INVALID_ID:
        return "not a change-tracking ID of this disk";
    case TM_E_RCT_DISABLED:
        return "change tracking is disabled";
    case TM_E_RCT_MISSING:
        return "change-tracking information for that ID is gone";
    case TM_E_RCT_RESET:
        return "change tracking was reset since that ID";
    case TM_E_RCT_OTHER_DISK:
        return "that change-tracking ID belongs to another disk";
    case TM_E_CHAIN:
        return "broken differencing chain (parent missing, changed or "
               "mismatched)";
    }
    return "unknown tidemark error";
}

const char *
tm_strerror(int code)
{
    const char *s;

    if (code == 0)
        return "success";
    if (code > 0)
        return "unknown error (positive code)";
    if (code <= TM_E_CORRUPT)
        return project_strerror(code);
    s = strerrordesc_np(-code);
    return s != NULL ? s : "unknown system error";
}
