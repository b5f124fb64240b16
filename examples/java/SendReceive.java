// Sends "tick N" every second and, at the same time, answers every line it reads with
// "echo: LINE": a second thread does the ticking.
// Build and run: javac SendReceive.java && websocketd --port=8080 java -cp . SendReceive

import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

public class SendReceive {
    /** Standard output, UTF-8 whatever the locale says (programs get no LANG by default). */
    static final PrintStream out = new PrintStream(
            new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)),
            false,
            StandardCharsets.UTF_8);

    /** Sends one line; synchronized so that lines from the two threads never mix. */
    static synchronized void send(String line) {
        out.println(line);
        out.flush(); // send it now
    }

    public static void main(String[] args) throws IOException {
        Thread ticker = new Thread(() -> {
            try {
                for (int n = 1; ; n++) {
                    Thread.sleep(1000);
                    send("tick " + n);
                }
            } catch (InterruptedException stopped) {
                // the program is ending
            }
        });
        ticker.setDaemon(true); // does not keep the program alive once input ends
        ticker.start();
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            send("echo: " + line);
        }
    }
}
