/* Sends "tick N" every second and, at the same time, answers every line it reads with
 * "echo: LINE". One loop does both: poll() waits for input, but never past the next tick.
 * Build and run: cc -o send-receive send-receive.c && websocketd --port=8080 ./send-receive */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Milliseconds on a clock that never jumps. */
static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* flush after every line */
    char *pending = NULL; /* input read but not yet a whole line */
    size_t used = 0;
    long long next = now_ms() + 1000;
    for (int tick = 1;;) {
        long long wait = next - now_ms();
        struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
        int ready = poll(&in, 1, wait > 0 ? (int)wait : 0);
        if (ready > 0) {
            char chunk[4096];
            ssize_t got = read(STDIN_FILENO, chunk, sizeof chunk);
            if (got <= 0) {
                break; /* the client is gone */
            }
            char *grown = realloc(pending, used + (size_t)got);
            if (grown == NULL) {
                break;
            }
            pending = grown;
            memcpy(pending + used, chunk, (size_t)got);
            used += (size_t)got;
            char *end;
            while ((end = memchr(pending, '\n', used)) != NULL) {
                size_t length = (size_t)(end - pending);
                fputs("echo: ", stdout);
                fwrite(pending, 1, length, stdout);
                putchar('\n');
                used -= length + 1;
                memmove(pending, end + 1, used);
            }
        }
        if (now_ms() >= next) {
            printf("tick %d\n", tick++);
            next += 1000;
        }
    }
    free(pending);
    return 0;
}
