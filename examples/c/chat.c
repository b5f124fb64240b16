/* A chat room: every line a client sends goes to every client, stamped with the time (UTC).
 * One copy serves the whole room:
 *   cc -o chat chat.c && websocketd --port=8080 --broadcast --broadcastinput=lines ./chat */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* flush after every line */
    char *line = NULL;
    size_t size = 0;
    ssize_t length;
    while ((length = getline(&line, &size, stdin)) != -1) {
        if (length > 0 && line[length - 1] == '\n') {
            length--;
        }
        if (length == 0) {
            continue;
        }
        char stamp[16];
        time_t now = time(NULL);
        struct tm utc;
        gmtime_r(&now, &utc);
        strftime(stamp, sizeof stamp, "%H:%M:%S", &utc);
        printf("%s ", stamp);
        fwrite(line, 1, (size_t)length, stdout);
        putchar('\n');
    }
    free(line);
    return 0;
}
