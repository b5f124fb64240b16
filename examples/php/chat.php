#!/usr/bin/env php
<?php
// A chat room: every line a client sends goes to every client, stamped with the time (UTC).
// One copy serves the whole room:
//   websocketd --port=8080 --broadcast --broadcastinput=lines ./chat.php
while (($line = fgets(STDIN)) !== false) {
    $line = rtrim($line, "\n");
    if ($line === '') {
        continue;
    }
    echo gmdate('H:i:s'), " $line\n";
    flush(); // send it now
}
