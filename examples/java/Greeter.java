// Answers every line it reads with "Hello, LINE!" until end of input.
// Build and run: javac Greeter.java && websocketd --port=8080 java -cp . Greeter

import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

public class Greeter {
    /** Standard output, UTF-8 whatever the locale says (programs get no LANG by default). */
    static final PrintStream out = new PrintStream(
            new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)),
            false,
            StandardCharsets.UTF_8);

    public static void main(String[] args) throws IOException {
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            out.println("Hello, " + line + "!");
            out.flush(); // send it now
        }
    }
}
