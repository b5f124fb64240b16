#!/usr/bin/env php
<?php
// Prints its environment as NAME=value lines sorted by name. Run: websocketd --port=8080 ./dump-env.php
$env = getenv();
ksort($env, SORT_STRING);
foreach ($env as $name => $value) {
    echo "$name=$value\n";
    flush(); // send it now
}
