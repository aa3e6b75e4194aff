// A thin, prefixed layer over hiredis 0.14.1, the socket calls and OpenSSL for Swift.
//
// hiredis is the RESP codec only (its reply reader); the sockets and TLS sessions are driven by
// SluiceRedis' own I/O thread. Swift cannot call C variadic functions or function-like macros, and
// some calls differ between Linux and Darwin (MSG_NOSIGNAL there, SO_NOSIGPIPE here); these
// `static inline` helpers give it plain, nullability-annotated entry points instead. Nothing here
// keeps state: ownership stays with the caller and with hiredis' and OpenSSL's own functions.
#ifndef SLUICE_CHIREDIS_SHIM_H
#define SLUICE_CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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

/// A reply reader with that cap: every connection and RESPReplyDecoder read through one.
static inline redisReader *_Nullable sluice_reader_create(void) {
    redisReader *reader = redisReaderCreate();
    if (reader != NULL) {
        sluice_reader_limit_arrays(reader);
    }
    return reader;
}

// MARK: Replies

/// The reader's error string, or NULL when it holds no error.
static inline const char *_Nullable sluice_reader_errstr(const redisReader *r) {
    return r->err ? r->errstr : NULL;
}

/// Feeds bytes read from the socket to the reader.
static inline int sluice_reader_feed(redisReader *r, const void *bytes, size_t length) {
    return redisReaderFeed(r, (const char *)bytes, length);
}

/// Next complete reply in the reader's buffer; *reply is NULL when none is complete yet.
static inline int sluice_reader_next(redisReader *r, redisReply *_Nullable *_Nonnull reply) {
    return redisReaderGetReply(r, (void **)reply);
}

static inline void sluice_free_reply(redisReply *reply) { freeReplyObject(reply); }

static inline redisReply *sluice_reply_element(const redisReply *reply, size_t index) {
    return reply->element[index];
}

// MARK: Sockets

/// Resolves a host name (or numeric address) for a stream socket; 0 or a getaddrinfo error.
static inline int sluice_resolve(const char *host, const char *port, struct addrinfo *_Nullable *_Nonnull result) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    return getaddrinfo(host, port, &hints, result);
}

/// Prepares a new socket: non-blocking, closed on exec, never raising SIGPIPE (Darwin; Linux
/// passes MSG_NOSIGNAL to every send instead), no Nagle delay for TCP.
static inline int sluice_prepare_socket(int fd, int family) {
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) return -1;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) return -1;
    int on = 1;
#ifdef SO_NOSIGPIPE
    if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on) == -1) return -1;
#endif
    if (family == AF_INET || family == AF_INET6) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    return 0;
}

/// Starts connecting a new non-blocking socket to `address`. Returns 0 when connected, 1 when
/// the connection is in progress (wait for POLLOUT, then `sluice_connect_result`), -1 with errno.
static inline int sluice_connect(const struct sockaddr *address, socklen_t length, int *_Nonnull fd) {
    *fd = socket(address->sa_family, SOCK_STREAM, 0);
    if (*fd == -1) return -1;
    if (sluice_prepare_socket(*fd, address->sa_family) == -1) {
        int saved = errno;
        close(*fd);
        *fd = -1;
        errno = saved;
        return -1;
    }
    if (connect(*fd, address, length) == 0) return 0;
    if (errno == EINPROGRESS || errno == EINTR) return 1;
    int saved = errno;
    close(*fd);
    *fd = -1;
    errno = saved;
    return -1;
}

/// Starts connecting to a unix socket; returns as `sluice_connect` (ENAMETOOLONG for a long path).
static inline int sluice_connect_unix(const char *path, int *_Nonnull fd) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address.sun_path) {
        *fd = -1;
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(address.sun_path, path);
    int result = sluice_connect((const struct sockaddr *)&address, sizeof address, fd);
    // A full backlog of a unix socket answers EAGAIN: wait for POLLOUT as for TCP.
    if (result == -1 && errno == EAGAIN) return 1;
    return result;
}

/// The outcome of a connect in progress: 0 when connected, else the socket's error (errno value).
static inline int sluice_connect_result(int fd) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == -1) return errno;
    return error;
}

/// `send` that can never raise SIGPIPE: a peer that is gone gives EPIPE, like any other error.
static inline ssize_t sluice_send(int fd, const void *bytes, size_t length) {
#ifdef MSG_NOSIGNAL
    return send(fd, bytes, length, MSG_NOSIGNAL);
#else
    return send(fd, bytes, length, 0);  // SO_NOSIGPIPE is set on the socket
#endif
}

static inline ssize_t sluice_recv(int fd, void *bytes, size_t length) { return recv(fd, bytes, length, 0); }

static inline int sluice_errno(void) { return errno; }

/// The `poll` event for "the peer closed its side" where the platform has one (Linux: `POLLRDHUP`,
/// which `<poll.h>` declares only with `_GNU_SOURCE`), else 0. Unlike `POLLIN` it does not fire
/// when data arrives, so a thread can watch a socket for its end while another reads from it.
static inline short sluice_poll_peer_closed(void) {
#if defined(__linux__)
    return 0x2000;
#else
    return 0;
#endif
}

// MARK: TLS (OpenSSL)

/// A client context verifying peers, TLS 1.2 at least.
static inline SSL_CTX *_Nullable sluice_tls_context_new(void) {
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) return NULL;
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    return context;
}

/// A session for one connection over two memory buffers: the I/O thread moves the encrypted
/// bytes between them and the socket itself (so every write goes through `sluice_send`).
/// `server_name` is sent as SNI (unless it is an IP address) and is the name the certificate must
/// hold (a DNS name, or an IP address when it is one).
static inline SSL *_Nullable sluice_tls_session_new(SSL_CTX *context, const char *server_name) {
    SSL *session = SSL_new(context);
    if (session == NULL) return NULL;
    BIO *input = BIO_new(BIO_s_mem());
    BIO *output = BIO_new(BIO_s_mem());
    if (input == NULL || output == NULL) {
        if (input) BIO_free(input);
        if (output) BIO_free(output);
        SSL_free(session);
        return NULL;
    }
    // An empty memory buffer reads as "retry later", not as end of file.
    BIO_set_mem_eof_return(input, -1);
    BIO_set_mem_eof_return(output, -1);
    SSL_set_bio(session, input, output);
    SSL_set_connect_state(session);
    struct in6_addr ip;
    int is_ip = inet_pton(AF_INET, server_name, &ip) == 1 || inet_pton(AF_INET6, server_name, &ip) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session), server_name)
                   : (SSL_set_tlsext_host_name(session, server_name) == 1 && SSL_set1_host(session, server_name) == 1);
    if (!ok) {
        SSL_free(session);
        return NULL;
    }
    return session;
}

/// Encrypted bytes waiting to be sent.
static inline size_t sluice_tls_pending_output(SSL *session) { return BIO_ctrl_pending(SSL_get_wbio(session)); }

/// Takes up to `length` encrypted bytes to send; returns how many.
static inline int sluice_tls_take_output(SSL *session, void *bytes, int length) {
    return BIO_read(SSL_get_wbio(session), bytes, length);
}

/// Hands bytes received from the socket to the session.
static inline int sluice_tls_give_input(SSL *session, const void *bytes, int length) {
    return BIO_write(SSL_get_rbio(session), bytes, length);
}

/// The oldest queued OpenSSL error as text (written into `buffer`); 0 when the queue is empty.
static inline unsigned long sluice_tls_error(char *buffer, size_t length) {
    unsigned long code = ERR_get_error();
    if (code != 0) ERR_error_string_n(code, buffer, length);
    ERR_clear_error();
    return code;
}

#pragma clang assume_nonnull end

#endif
