/* SPDX-License-Identifier: MIT */
/* errors.h - tidemark's error codes.  Functions that act return 0 on
 * success and a negative number on failure: -errno for a system error, or
 * one of the codes below, which all lie below every errno value.  Codes are
 * never renumbered or reused. */
#ifndef TIDEMARK_ERRORS_H
#define TIDEMARK_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum tm_err_code {
    TM_E_CORRUPT = -4096,       /* a structure fails validation */
    TM_E_UNSUPPORTED = -4097,   /* valid file, feature we lack */
    TM_E_POISONED = -4098,      /* a metadata write failed: close, reopen */
    TM_E_RCT_FOREIGN_WRITE = -4099, /* the disk changed without us */
    TM_E_PROTO = -4100,         /* the peer broke the protocol */
    TM_E_TRUNCATED = -4101,     /* the file ends before a structure does */
    TM_E_READONLY = -4102,      /* write to a handle opened read-only */
    TM_E_RANGE = -4103,         /* offset or length outside the object */
    TM_E_INVALID = -4104,       /* a caller's argument is not acceptable */
    TM_E_FAULT_INJECTED = -4105, /* reserved for test backends */
    TM_E_LOCKED = -4106,        /* another program has the file open */
    TM_E_CHAIN = -4107,         /* a differencing disk's parent is missing,
                                 * changed or does not fit */
    TM_E_RCT_INVALID_ID = -4108, /* malformed or unknown change-tracking
                                  * ID (ERROR_VHD_INVALID_CHANGE_TRACKING_ID) */
    TM_E_RCT_DISABLED = -4109,  /* change tracking is off for the disk */
    TM_E_RCT_MISSING = -4110,   /* the ID's history is gone (aged out;
                                 * MISSING_CHANGE_TRACKING_INFORMATION) */
    TM_E_RCT_RESET = -4111,     /* tracking was reset since the ID: a
                                 * foreign write, a resize, lost sidecars */
    TM_E_RCT_OTHER_DISK = -4112, /* the ID belongs to another disk */
};

/* A static string naming 'code' (a tm_err_code or -errno); never NULL. */
const char *tm_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
