/* pl-notify-min: the smallest pattern the launcher can supervise. It sends
 * READY=1 to $NOTIFY_SOCKET and waits for its end, so that a cold launch
 * of it measures the launcher and the sandbox, not a pattern's own start
 * (tests/bench/run_load.sh --executable, docs/performance.md). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(void) {
    const char* path = getenv("NOTIFY_SOCKET");
    if (path && strlen(path) < sizeof(((struct sockaddr_un*)0)->sun_path)) {
        struct sockaddr_un to = {.sun_family = AF_UNIX};
        strcpy(to.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) sendto(fd, "READY=1", 7, 0, (struct sockaddr*)&to, sizeof to);
    }
    for (;;) pause();
}
