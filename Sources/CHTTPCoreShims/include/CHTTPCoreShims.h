#ifndef CHTTPCORESHIMS_H
#define CHTTPCORESHIMS_H

// Thin wrappers around Linux calls that Swift's Glibc module does not import cleanly
// (epoll's packed struct, accept4, eventfd, MSG_NOSIGNAL). Every function returns what the
// underlying call returns (-1 with errno set on failure); the Swift side reads errno at once.

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

/// Readiness flags reported in `chttp_event.flags`.
#define CHTTP_EVENT_READABLE 1
#define CHTTP_EVENT_HANGUP 2
#define CHTTP_EVENT_ERROR 4

/// One readiness event: the token given at registration and the CHTTP_EVENT_* flags.
typedef struct chttp_event {
    uint64_t token;
    uint32_t flags;
} chttp_event;

/// epoll_create1(EPOLL_CLOEXEC).
int chttp_epoll_create(void);

/// Registers `fd` edge-triggered for readability and hang-up (EPOLLIN | EPOLLRDHUP | EPOLLET).
int chttp_epoll_watch_edge(int epfd, int fd, uint64_t token);

/// Registers `fd` level-triggered for readability (used for the wake-up eventfd).
int chttp_epoll_watch_level(int epfd, int fd, uint64_t token);

/// epoll_wait that translates the kernel's packed events into `chttp_event`s.
int chttp_epoll_wait(int epfd, chttp_event *_Nonnull events, int max_events, int timeout_ms);

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
int chttp_accept(int fd, struct sockaddr *_Nullable address, socklen_t *_Nullable length);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int chttp_eventfd(void);

/// Adds 1 to an eventfd counter.
int chttp_eventfd_signal(int fd);

/// send(2) with MSG_NOSIGNAL, so a closed peer yields EPIPE instead of SIGPIPE.
ssize_t chttp_send(int fd, const void *_Nonnull buffer, size_t length);

/// Waits up to `timeout_ms` for `fd` to become writable; returns poll(2)'s result.
int chttp_wait_writable(int fd, int timeout_ms);

/// Sets TCP_NODELAY on a TCP socket.
int chttp_set_nodelay(int fd);

/// Sets SO_REUSEADDR (and SO_REUSEPORT when `reuse_port` is non-zero) on a socket.
int chttp_set_reuse(int fd, int reuse_port);

/// Sets SO_LINGER to {1, 0}: close() then sends RST and frees the socket at once.
int chttp_set_linger_zero(int fd);

/// Names the calling thread (at most 15 characters are kept).
void chttp_set_thread_name(const char *_Nonnull name);

#endif
