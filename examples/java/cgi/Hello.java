// A CGI script: headers, an empty line, then the body.
// Build: javac Hello.java. --cgidir runs executables, so put a launcher beside it, e.g. an
// executable file "hello" holding: #!/bin/sh  exec java -cp /path/to/classes Hello
// (examples/build.sh writes one), then: websocketd --port=8080 --cgidir=DIR and open
// http://localhost:8080/hello?name=you

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

public class Hello {
    /** Standard output, UTF-8 whatever the locale says (programs get no LANG by default). */
    static final PrintStream out = new PrintStream(
            new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)),
            false,
            StandardCharsets.UTF_8);

    /** The variable's value, or "" when it is not set. */
    static String env(String name) {
        String value = System.getenv(name);
        return value != null ? value : "";
    }

    public static void main(String[] args) {
        out.print("Content-Type: text/plain; charset=utf-8\r\n\r\n");
        out.print("Hello from a CGI script in Java!\n");
        out.print("REQUEST_METHOD=" + env("REQUEST_METHOD") + "\n");
        out.print("QUERY_STRING=" + env("QUERY_STRING") + "\n");
        out.flush();
    }
}
