/* Prints its environment as NAME=value lines sorted by name.
 * Build and run: cc -o dump-env dump-env.c && websocketd --port=8080 ./dump-env */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Orders "NAME=value" entries by NAME alone. */
static int by_name(const void *a, const void *b) {
    const char *x = *(const char *const *)a;
    const char *y = *(const char *const *)b;
    size_t nx = strcspn(x, "="), ny = strcspn(y, "=");
    int order = memcmp(x, y, nx < ny ? nx : ny);
    if (order != 0) {
        return order;
    }
    return (nx > ny) - (nx < ny);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* flush after every line */
    size_t count = 0;
    while (environ[count] != NULL) {
        count++;
    }
    qsort(environ, count, sizeof *environ, by_name);
    for (size_t i = 0; i < count; i++) {
        printf("%s\n", environ[i]);
    }
    return 0;
}
