#include "CHTTPCoreShims.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int chttp_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int chttp_epoll_watch_edge(int epfd, int fd, uint64_t token) {
    struct epoll_event event = {0};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int chttp_epoll_watch_level(int epfd, int fd, uint64_t token) {
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int chttp_epoll_wait(int epfd, chttp_event *events, int max_events, int timeout_ms) {
    struct epoll_event raw[64];
    if (max_events > 64) max_events = 64;
    if (max_events < 1) max_events = 1;
    int count = epoll_wait(epfd, raw, max_events, timeout_ms);
    for (int i = 0; i < count; i++) {
        uint32_t flags = 0;
        if (raw[i].events & EPOLLIN) flags |= CHTTP_EVENT_READABLE;
        if (raw[i].events & (EPOLLHUP | EPOLLRDHUP)) flags |= CHTTP_EVENT_HANGUP;
        if (raw[i].events & EPOLLERR) flags |= CHTTP_EVENT_ERROR;
        events[i].token = raw[i].data.u64;
        events[i].flags = flags;
    }
    return count;
}

int chttp_accept(int fd, struct sockaddr *address, socklen_t *length) {
    return accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int chttp_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int chttp_eventfd_signal(int fd) {
    uint64_t one = 1;
    return (int)write(fd, &one, sizeof one);
}

ssize_t chttp_send(int fd, const void *buffer, size_t length) {
    return send(fd, buffer, length, MSG_NOSIGNAL);
}

int chttp_wait_writable(int fd, int timeout_ms) {
    struct pollfd entry = {.fd = fd, .events = POLLOUT, .revents = 0};
    return poll(&entry, 1, timeout_ms);
}

int chttp_set_nodelay(int fd) {
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int chttp_set_reuse(int fd, int reuse_port) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return -1;
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return -1;
    return 0;
}

int chttp_set_linger_zero(int fd) {
    struct linger value = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, sizeof value);
}

void chttp_set_thread_name(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = 0;
    pthread_setname_np(pthread_self(), truncated);
}
