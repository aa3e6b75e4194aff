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
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#pragma clang assume_nonnull begin

// MARK: A cap on the arrays a reply may announce

/// The most elements an array reply may announce. hiredis reserves 8 bytes per element the moment it reads an
/// array's header, before any element arrives: without a cap, the 12 bytes `*300000000\r\n` from whatever answers
/// on the port reserve 2.4 GB (Debian's 0.14.1 refuses only counts above INT_MAX, 16 GB; hiredis 1.x above 2^32-1).
/// No Sluice reply comes near: the largest are HGETALLs of a quota hash, two elements per configured scope.
#define SLUICE_READER_MAX_ARRAY_ELEMENTS (1 << 22)

#if HIREDIS_MAJOR >= 1
/// Caps the arrays `reader` accepts (hiredis 1.x has the setting); a larger one is a protocol error.
static inline void sluice_reader_limit_arrays(redisReader *reader) {
    reader->maxelements = SLUICE_READER_MAX_ARRAY_ELEMENTS;
}
#else
// hiredis 0.14 has no such setting, and its reply constructors are private: these build the same `redisReply`
// objects (`freeReplyObject` frees them) and refuse a larger array, which the reader reports as "Out of memory".

static inline redisReply *_Nullable sluice_reply_create(int type) {
    redisReply *reply = calloc(1, sizeof(redisReply));
    if (reply != NULL) {
        reply->type = type;
    }
    return reply;
}

/// Links a new reply into its parent array, as hiredis does.
static inline void *sluice_reply_link(const redisReadTask *task, redisReply *reply) {
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = reply;
    }
    return reply;
}

static inline void *_Nullable sluice_reply_create_string(const redisReadTask *task, char *str, size_t len) {
    redisReply *reply = sluice_reply_create(task->type);
    if (reply == NULL) return NULL;
    char *buffer = malloc(len + 1);
    if (buffer == NULL) {
        freeReplyObject(reply);
        return NULL;
    }
    memcpy(buffer, str, len);
    buffer[len] = '\0';
    reply->str = buffer;
    reply->len = len;
    return sluice_reply_link(task, reply);
}

static inline void *_Nullable sluice_reply_create_array(const redisReadTask *task, int elements) {
    if (elements > SLUICE_READER_MAX_ARRAY_ELEMENTS) return NULL;
    redisReply *reply = sluice_reply_create(REDIS_REPLY_ARRAY);
    if (reply == NULL) return NULL;
    if (elements > 0) {
        reply->element = calloc((size_t)elements, sizeof(redisReply *));
        if (reply->element == NULL) {
            freeReplyObject(reply);
            return NULL;
        }
    }
    reply->elements = (size_t)(elements > 0 ? elements : 0);
    return sluice_reply_link(task, reply);
}

static inline void *_Nullable sluice_reply_create_integer(const redisReadTask *task, long long value) {
    redisReply *reply = sluice_reply_create(REDIS_REPLY_INTEGER);
    if (reply == NULL) return NULL;
    reply->integer = value;
    return sluice_reply_link(task, reply);
}

static inline void *_Nullable sluice_reply_create_nil(const redisReadTask *task) {
    redisReply *reply = sluice_reply_create(REDIS_REPLY_NIL);
    if (reply == NULL) return NULL;
    return sluice_reply_link(task, reply);
}

static inline void sluice_reply_free(void *reply) { freeReplyObject(reply); }

static const redisReplyObjectFunctions sluice_limited_reply_functions = {
    sluice_reply_create_string, sluice_reply_create_array, sluice_reply_create_integer, sluice_reply_create_nil,
    sluice_reply_free,
};

/// Caps the arrays `reader` accepts; a larger one stops the reader with an error.
static inline void sluice_reader_limit_arrays(redisReader *reader) {
    reader->fn = (redisReplyObjectFunctions *)&sluice_limited_reply_functions;
}
#endif

/// A reader for bytes that do not come from a socket, with the same cap as a connection's.
static inline redisReader *_Nullable sluice_reader_create(void) {
    redisReader *reader = redisReaderCreate();
    if (reader != NULL) {
        sluice_reader_limit_arrays(reader);
    }
    return reader;
}

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

/// Caps the arrays a new connection's replies may announce (see SLUICE_READER_MAX_ARRAY_ELEMENTS).
static inline redisContext *_Nullable sluice_context_limited(redisContext *_Nullable c) {
    if (c != NULL && c->reader != NULL) {
        sluice_reader_limit_arrays(c->reader);
    }
    return c;
}

static inline redisContext *_Nullable sluice_connect_tcp(const char *host, int port, long timeout_usec) {
    struct timeval tv = {timeout_usec / 1000000, timeout_usec % 1000000};
    return sluice_context_limited(redisConnectWithTimeout(host, port, tv));
}

static inline redisContext *_Nullable sluice_connect_unix(const char *path, long timeout_usec) {
    struct timeval tv = {timeout_usec / 1000000, timeout_usec % 1000000};
    return sluice_context_limited(redisConnectUnixWithTimeout(path, tv));
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

/// The reader's error string, or NULL when it holds no error.
static inline const char *_Nullable sluice_reader_errstr(const redisReader *r) {
    return r->err ? r->errstr : NULL;
}

static inline redisReply *sluice_reply_element(const redisReply *reply, size_t index) {
    return reply->element[index];
}

#pragma clang assume_nonnull end

#endif
