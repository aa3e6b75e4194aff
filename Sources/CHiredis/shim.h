// A thin, prefixed layer over hiredis 0.14.1 for Swift.
//
// Swift cannot call C variadic functions, and imports `char errstr[128]` as a tuple; these
// `static inline` helpers give it plain, nullability-annotated entry points instead. Nothing
// here allocates on its own: ownership stays with hiredis' own functions.
#ifndef SLUICE_CHIREDIS_SHIM_H
#define SLUICE_CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/time.h>

#pragma clang assume_nonnull begin

/// The context's error string, or NULL when it holds no error.
static inline const char *_Nullable sluice_context_errstr(const redisContext *c) {
    return c->err ? c->errstr : NULL;
}

/// The context's hiredis error code (REDIS_ERR_IO, REDIS_ERR_EOF, ...), 0 for none.
static inline int sluice_context_err(const redisContext *c) { return c->err; }

/// The connected socket.
static inline int sluice_context_fd(const redisContext *c) { return c->fd; }

/// Bytes written with `sluice_append` but not yet sent to the socket.
static inline int sluice_context_has_pending_output(const redisContext *c) {
    return c->obuf != NULL && sdslen(c->obuf) > 0;
}

/// Puts an established, blocking connection into non-blocking mode: hiredis then treats
/// EAGAIN on read and write as "try again later" instead of an error.
static inline int sluice_context_make_nonblocking(redisContext *c) {
    int flags = fcntl(c->fd, F_GETFL);
    if (flags == -1 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) == -1) {
        return REDIS_ERR;
    }
    c->flags &= ~REDIS_BLOCK;
    return REDIS_OK;
}

static inline redisContext *_Nullable sluice_connect_tcp(const char *host, int port, long timeout_usec) {
    struct timeval tv = {timeout_usec / 1000000, timeout_usec % 1000000};
    return redisConnectWithTimeout(host, port, tv);
}

static inline redisContext *_Nullable sluice_connect_unix(const char *path, long timeout_usec) {
    struct timeval tv = {timeout_usec / 1000000, timeout_usec % 1000000};
    return redisConnectUnixWithTimeout(path, tv);
}

/// Sets the socket's send and receive timeout (used for the blocking handshake only).
static inline int sluice_set_timeout(redisContext *c, long timeout_usec) {
    struct timeval tv = {timeout_usec / 1000000, timeout_usec % 1000000};
    return redisSetTimeout(c, tv);
}

/// Appends an already encoded RESP command to the output buffer.
static inline int sluice_append(redisContext *c, const char *bytes, size_t length) {
    return redisAppendFormattedCommand(c, bytes, length);
}

/// Runs one command synchronously (blocking mode only); returns NULL on I/O error.
static inline redisReply *_Nullable sluice_command_argv(redisContext *c, int argc, const char *_Nonnull *_Nonnull argv,
                                                       const size_t *argvlen) {
    return (redisReply *)redisCommandArgv(c, argc, argv, argvlen);
}

/// Next complete reply already in the reader's buffer; *reply is NULL when none is complete.
static inline int sluice_next_reply(redisContext *c, redisReply *_Nullable *_Nonnull reply) {
    return redisGetReplyFromReader(c, (void **)reply);
}

static inline void sluice_free_reply(redisReply *reply) { freeReplyObject(reply); }

static inline redisReply *sluice_reply_element(const redisReply *reply, size_t index) {
    return reply->element[index];
}

#pragma clang assume_nonnull end

#endif
