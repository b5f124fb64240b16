/* Answers every line it reads with "Hello, LINE!" until end of input.
 * Build and run: cc -o greeter greeter.c && websocketd --port=8080 ./greeter */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* flush after every line */
    char *line = NULL;
    size_t size = 0;
    ssize_t length;
    while ((length = getline(&line, &size, stdin)) != -1) {
        if (length > 0 && line[length - 1] == '\n') {
            length--;
        }
        /* fwrite, not printf: the line may hold any bytes, NUL included. */
        fputs("Hello, ", stdout);
        fwrite(line, 1, (size_t)length, stdout);
        fputs("!\n", stdout);
    }
    free(line);
    return 0;
}
