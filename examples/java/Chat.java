// A chat room: every line a client sends goes to every client, stamped with the time (UTC).
// One copy serves the whole room:
//   javac Chat.java && websocketd --port=8080 --broadcast --broadcastinput=lines java -cp . Chat

import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;

public class Chat {
    /** Standard output, UTF-8 whatever the locale says (programs get no LANG by default). */
    static final PrintStream out = new PrintStream(
            new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)),
            false,
            StandardCharsets.UTF_8);

    public static void main(String[] args) throws IOException {
        DateTimeFormatter time = DateTimeFormatter.ofPattern("HH:mm:ss");
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            out.println(ZonedDateTime.now(ZoneOffset.UTC).format(time) + " " + line);
            out.flush(); // send it now
        }
    }
}
