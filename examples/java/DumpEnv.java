// Prints its environment as NAME=value lines sorted by name.
// Build and run: javac DumpEnv.java && websocketd --port=8080 java -cp . DumpEnv

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;

public class DumpEnv {
    /** Standard output, UTF-8 whatever the locale says (programs get no LANG by default). */
    static final PrintStream out = new PrintStream(
            new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)),
            false,
            StandardCharsets.UTF_8);

    public static void main(String[] args) {
        for (Map.Entry<String, String> variable : new TreeMap<>(System.getenv()).entrySet()) {
            out.println(variable.getKey() + "=" + variable.getValue());
            out.flush(); // send it now
        }
    }
}
