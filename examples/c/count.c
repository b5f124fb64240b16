/* Counts from 1 to 10, one number every half second.
 * Build and run: cc -o count count.c && websocketd --port=8080 ./count */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* flush after every line */
    struct timespec half = {0, 500000000L};
    for (int i = 1; i <= 10; i++) {
        if (i > 1) {
            nanosleep(&half, NULL);
        }
        printf("%d\n", i);
    }
    return 0;
}
