#!/usr/bin/env php
<?php
// Answers every line it reads with "Hello, LINE!" until end of input. Run: websocketd --port=8080 ./greeter.php
while (($line = fgets(STDIN)) !== false) {
    $line = rtrim($line, "\n");
    echo "Hello, $line!\n";
    flush(); // send it now
}
