/* A CGI script: headers, an empty line, then the body.
 * Build and run: cc -o hello hello.c && websocketd --port=8080 --cgidir=. and open
 * http://localhost:8080/hello?name=you */
#include <stdio.h>
#include <stdlib.h>

/* The variable's value, or "" when it is not set. */
static const char *env(const char *name) {
    const char *value = getenv(name);
    return value != NULL ? value : "";
}

int main(void) {
    printf("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    printf("Hello from a CGI script in C!\n");
    printf("REQUEST_METHOD=%s\n", env("REQUEST_METHOD"));
    printf("QUERY_STRING=%s\n", env("QUERY_STRING"));
    return 0;
}
