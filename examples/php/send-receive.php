#!/usr/bin/env php
<?php
// Sends "tick N" every second and, at the same time, answers every line it reads with
// "echo: LINE". Run: websocketd --port=8080 ./send-receive.php
// One loop does both: stream_select waits for input, but never past the next tick.
stream_set_blocking(STDIN, false);
$pending = '';          // input read but not yet a whole line
$tick = 1;
$next = microtime(true) + 1;
while (true) {
    $wait = max(0.0, $next - microtime(true));
    $read = [STDIN];
    $write = $except = null;
    $ready = stream_select($read, $write, $except, (int) $wait, (int) (fmod($wait, 1.0) * 1e6));
    if ($ready === false) {
        break;
    }
    if ($ready > 0) {
        $chunk = fread(STDIN, 65536);
        if ($chunk === false || ($chunk === '' && feof(STDIN))) {
            break; // the client is gone
        }
        $pending .= $chunk;
        while (($end = strpos($pending, "\n")) !== false) {
            echo 'echo: ', substr($pending, 0, $end), "\n";
            flush();
            $pending = substr($pending, $end + 1);
        }
    }
    if (microtime(true) >= $next) {
        echo "tick $tick\n";
        flush();
        $tick++;
        $next += 1;
    }
}
