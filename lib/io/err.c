/* SPDX-License-Identifier: MIT */
/* err.c - struct tm_err: the error detail a handle keeps until its next
 * call (code, one-line message, file offset). */
#include <stdio.h>

#include "io.h"

static void
err_vset(struct tm_err *e, int code, uint64_t file_off, const char *fmt,
         va_list ap)
{
    e->code = code;
    e->file_off = file_off;
    e->msg[0] = '\0';
    if (fmt != NULL)
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int
tm_err_set(struct tm_err *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    va_start(ap, fmt);
    err_vset(e, code, UINT64_MAX, fmt, ap);
    va_end(ap);
    return code;
}

int
tm_err_set_at(struct tm_err *e, int code, uint64_t file_off,
              const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    va_start(ap, fmt);
    err_vset(e, code, file_off, fmt, ap);
    va_end(ap);
    return code;
}

/* Appends the NUL-terminated 'src' at *pos, truncating at the end of
 * msg and keeping it terminated. */
static void
msg_append(char *msg, size_t cap, size_t *pos, const char *src)
{
    size_t n = strlen(src);

    if (*pos + 1 >= cap)
        return;
    if (n > cap - 1 - *pos)
        n = cap - 1 - *pos;
    memcpy(msg + *pos, src, n);
    *pos += n;
    msg[*pos] = '\0';
}

/* The old message is copied aside first: it is both source and
 * destination.  Truncation keeps the prefix, which names the outer
 * context, and cuts the innermost detail. */
void
tm_err_prefix(struct tm_err *e, const char *fmt, ...)
{
    char old[sizeof(e->msg)];
    char prefix[sizeof(e->msg)];
    size_t pos = 0;
    va_list ap;

    if (e == NULL || fmt == NULL)
        return;
    memcpy(old, e->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    e->msg[0] = '\0';
    msg_append(e->msg, sizeof(e->msg), &pos, prefix);
    if (old[0] != '\0') {
        msg_append(e->msg, sizeof(e->msg), &pos, ": ");
        msg_append(e->msg, sizeof(e->msg), &pos, old);
    }
}

void
tm_err_clear(struct tm_err *e)
{
    if (e == NULL)
        return;
    e->code = 0;
    e->file_off = UINT64_MAX;
    e->msg[0] = '\0';
}
