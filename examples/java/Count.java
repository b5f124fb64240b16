// Counts from 1 to 10, one number every half second.
// Build and run: javac Count.java && websocketd --port=8080 java -cp . Count

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

public class Count {
    /** Standard output, UTF-8 whatever the locale says (programs get no LANG by default). */
    static final PrintStream out = new PrintStream(
            new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)),
            false,
            StandardCharsets.UTF_8);

    public static void main(String[] args) throws InterruptedException {
        for (int i = 1; i <= 10; i++) {
            if (i > 1) {
                Thread.sleep(500);
            }
            out.println(i);
            out.flush(); // send it now
        }
    }
}
